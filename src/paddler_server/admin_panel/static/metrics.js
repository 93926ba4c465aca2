// Read the cluster's generated-token counter out of Prometheus text from /metrics.

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)/;

/** Parse Prometheus exposition text into [{name, labels, value}]. */
export function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line.trim());
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function isGeneratedCounter(sample) {
  if (/(generated_tokens|tokens_generated|completion_tokens)(_total)?$/.test(sample.name)) return true;
  return /tokens(_total)?$/.test(sample.name) && ["generated", "completion"].includes(sample.labels.kind ?? sample.labels.type);
}

/** The samples of one pool (their `pool` label), or all of them when `pool` is null. */
function inPool(samples, pool) {
  return pool === null ? samples : samples.filter((s) => s.labels.pool === pool);
}

/**
 * Total generated tokens so far, or null when the balancer exports no such counter.
 * An unlabelled sample wins; otherwise labelled samples (per agent) are summed. With `pool`,
 * only samples labelled with that pool count (the `<prefix>pool_generated_tokens` twin).
 */
export function generatedTokens(samples, prefix, pool = null) {
  const own = inPool(samples, pool).filter((s) => s.name.startsWith(prefix) && isGeneratedCounter(s));
  if (own.length === 0) return null;
  const names = [...new Set(own.map((s) => s.name))].sort((a, b) => a.length - b.length);
  const series = own.filter((s) => s.name === names[0]);
  const plain = series.find((s) => Object.keys(s.labels).length === 0 || Object.keys(s.labels).every((k) => ["kind", "type", "pool"].includes(k)));
  return plain ? plain.value : series.reduce((sum, s) => sum + s.value, 0);
}

/** The buffered-requests gauge (the whole balancer's, or one `pool`'s twin), or null. */
export function bufferedRequests(samples, prefix, pool = null) {
  const name = pool === null ? `${prefix}requests_buffered` : `${prefix}pool_requests_buffered`;
  const sample = inPool(samples, pool).find((s) => s.name === name);
  return sample ? sample.value : null;
}

/** Per-agent generated tokens/s (the balancer's 10 s window), as Map(agent_id → value). */
export function agentTokensPerSecond(samples, prefix) {
  const rates = new Map();
  for (const s of samples) {
    if (s.name === `${prefix}agent_tokens_per_second` && s.labels.agent_id) rates.set(s.labels.agent_id, s.value);
  }
  return rates;
}
