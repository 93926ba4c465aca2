"""What the fuzz modules share: example counts and the shape of the fuzz cluster."""

from __future__ import annotations

import os

#: Examples per fuzzed operation; ``PADDLER_FUZZ_EXAMPLES=2000`` runs a long session.
EXAMPLES = int(os.environ.get("PADDLER_FUZZ_EXAMPLES", "5"))
AGENT = "fuzz-agent"
SLOTS = 2
#: Short enough that a generation with a huge (or the default 2000) max_tokens still ends
#: in seconds: generation stops at the end of the context.
CONTEXT = 192
