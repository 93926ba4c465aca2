"""The panel's pool switcher in a real Chromium, against a real balancer with real agents in
two pools: switching shows the chosen pool's agents, and the model page edits that pool only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_cluster import Cluster, free_port
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.model]

DEFAULT_CONTEXT_SIZE = 2048
BLUE_CONTEXT_SIZE = 1024


class TwoPoolCluster(Cluster):
    """Agent ``alpha`` in the ``default`` pool, with the model; ``beta`` in pool ``blue``,
    which has no desired state yet (so its agent has no model)."""

    def __init__(self, tmp: Path, model_path: Path) -> None:
        self.panel_addr = f"127.0.0.1:{free_port()}"
        super().__init__(tmp, model_path, web_admin_panel_addr=self.panel_addr)

    @property
    def panel_url(self) -> str:
        return f"http://{self.panel_addr}"

    def get(self, path: str) -> Any:
        return self.http.get(f"{self.management_url}{path}", timeout=5.0).json()


@pytest.fixture(scope="module")
def pools_cluster(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[Any]:
    cluster = TwoPoolCluster(tmp_path_factory.mktemp("panel-pools"), model_path)
    try:
        cluster.start_balancer()
        cluster.load_model(context_size=DEFAULT_CONTEXT_SIZE)
        cluster.start_agent("alpha", slots=1)
        cluster.start_agent("beta", slots=2, pool="blue")
        cluster.wait_agents(
            lambda agents: {a["name"]: a["slots_total"] for a in agents} == {"alpha": 1, "beta": 0},
            120.0,
            "alpha with its model, beta with none",
        )
        yield cluster
    finally:
        cluster.stop()


def agent_card(root: Any, name: str) -> Any:
    page = getattr(root, "page", root)
    return root.locator("article.agent").filter(has=page.locator(".agent-name", has_text=name))


def test_switch_pool_and_load_a_model_on_it(
    pools_cluster: TwoPoolCluster, page: Any, save_screenshot: Callable[[Any, str], None]
) -> None:
    cluster = pools_cluster
    page.goto(cluster.panel_url + "/")
    switcher = page.locator("#pool-switcher")
    expect(switcher).to_be_visible()
    expect(switcher.locator("option")).to_have_text(["default · 1 agent", "blue · 1 agent"])
    expect(switcher).to_have_value("default")
    expect(agent_card(page, "alpha")).to_be_visible()
    expect(agent_card(page, "beta")).to_have_count(0)

    switcher.select_option("blue")
    expect(page).to_have_url(re.compile(r"/\?pool=blue$"))
    expect(agent_card(page, "beta")).to_contain_text("0 total")
    expect(agent_card(page, "alpha")).to_have_count(0)
    expect(page.locator("[data-role=model-title]")).to_have_text("Model of pool blue")
    expect(page.locator("[data-role=desired-model]")).to_have_text("none")
    expect(page.locator("[data-role=agent-command]")).to_contain_text("--pool blue")

    page.get_by_role("link", name="Model", exact=True).click()
    expect(page).to_have_url(re.compile(r"/model\?pool=blue$"))
    expect(page.locator("[data-role=pool-name]")).to_have_text(" · pool blue")
    expect(page.locator("#field-model")).to_have_value("")
    page.locator("#field-model").fill(f"agent://{cluster.model_path}")
    page.locator("#field-context-size").fill(str(BLUE_CONTEXT_SIZE))
    page.get_by_role("button", name="Apply to pool blue").click()
    expect(page.locator("[data-role=submit-status]")).to_contain_text("Applied")
    progress = page.locator("#swap-progress")
    expect(agent_card(progress, "beta")).to_contain_text("0 busy / 2 total", timeout=120_000)
    expect(agent_card(progress, "alpha")).to_have_count(0)
    expect(progress.locator("[data-role=swap-summary]")).to_have_text(
        "1 of 1 agent applied the new state."
    )

    blue = cluster.get("/api/v1/pools/blue/desired_state")
    assert blue["model"] == {"LocalToAgent": str(cluster.model_path)}
    assert blue["inference_parameters"]["context_size"] == BLUE_CONTEXT_SIZE
    default = cluster.get("/api/v1/balancer_desired_state")
    assert default["inference_parameters"]["context_size"] == DEFAULT_CONTEXT_SIZE
    agents = {a["name"]: a for a in cluster.get("/api/v1/agents")["agents"]}
    assert agents["alpha"]["slots_total"] == 1
    assert agents["alpha"]["state_application_status"] == "Applied"
    assert agents["beta"]["model_path"] == str(cluster.model_path)

    page.reload()  # the chosen pool survives a reload
    expect(page.locator("#pool-switcher")).to_have_value("blue")
    expect(page.locator("#field-context-size")).to_have_value(str(BLUE_CONTEXT_SIZE))

    page.get_by_role("link", name="Dashboard").click()
    expect(page).to_have_url(re.compile(r"/\?pool=blue$"))
    expect(agent_card(page, "beta").locator(".pill")).to_have_text("ready")
    expect(page.locator("[data-role=desired-context-size]")).to_have_text(str(BLUE_CONTEXT_SIZE))
    expect(page.locator("[data-role=slot-totals]")).to_have_text("0 / 2")
    save_screenshot(page, "pools.png")
    expect(page.locator("[data-role=tokens-per-second] + .stat-hint")).to_have_text(
        "pool blue, from /metrics"
    )

    # The dashboard's metrics reader takes the pool's own series out of the real /metrics.
    answer = cluster.http.post(
        f"{cluster.inference_url}/api/v1/continue_from_raw_prompt",
        json={"raw_prompt": "Hello", "max_tokens": 4},
        headers={"Paddler-Pool": "blue"},
        timeout=60.0,
    )
    assert answer.status_code == 200 and '"Done"' in answer.text, answer.text
    read = page.evaluate(
        """async () => {
            const api = await import('/static/api.js');
            const m = await import('/static/metrics.js');
            const samples = m.parsePrometheus(await api.getText('/metrics'));
            return {
                blue: m.generatedTokens(samples, 'paddler_', 'blue'),
                default: m.generatedTokens(samples, 'paddler_', 'default'),
                all: m.generatedTokens(samples, 'paddler_'),
                buffered: m.bufferedRequests(samples, 'paddler_', 'blue'),
            };
        }"""
    )
    assert read["blue"] > 0 and not read["default"], read  # no default series yet
    assert read["all"] == read["blue"] and read["buffered"] == 0, read

    # The prompt page chats with the chosen pool (the subprotocol paddler.pool.blue).
    page.get_by_role("link", name="Prompt").click()
    expect(page).to_have_url(re.compile(r"/prompt\?pool=blue$"))
    expect(page.locator("[data-role=prompt-pool]")).to_have_text(" The chat goes to pool blue.")
    page.locator("#max-tokens").fill("8")
    page.locator("#prompt-input").fill("Say hello.")
    page.locator("#prompt-input").press("Enter")
    answer_card = page.locator(".message.assistant").nth(0)
    expect(answer_card).to_have_attribute("data-state", "done", timeout=60_000)
    expect(answer_card.locator(".meta")).to_contain_text("by beta")

    page.get_by_role("link", name="Dashboard").click()
    page.locator("#pool-switcher").select_option("default")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(agent_card(page, "alpha")).to_contain_text("0 busy / 1 total")
    expect(page.locator("[data-role=desired-context-size]")).to_have_text(str(DEFAULT_CONTEXT_SIZE))


def test_unknown_pool_in_the_url_is_explained(pools_cluster: TwoPoolCluster, page: Any) -> None:
    page.goto(pools_cluster.panel_url + "/?pool=nowhere")
    notice = page.locator("[data-role=unknown-pool]")
    expect(notice).to_contain_text("no pool named “nowhere”")
    notice.get_by_role("link", name="Show the default pool").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(notice).to_be_hidden()
    expect(agent_card(page, "alpha")).to_be_visible()
