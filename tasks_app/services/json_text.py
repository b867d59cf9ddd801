"""JSON text as the store and Kafka keep it: compact, from one shared encoder.

`json.dumps` with options builds a new encoder on every call; for a task's
message that cost more than the encoding itself (docs/benchmarks.md).
"""

import json

compact_json = json.JSONEncoder(separators=(",", ":")).encode
