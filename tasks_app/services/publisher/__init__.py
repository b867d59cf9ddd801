"""Move due tasks from the outbox to Kafka in order, one active publisher at a time.

`run`: a publisher run; `batch`: one batch; `pipeline`: overlapped batches;
`topics_ready`: topics confirmed in Kafka; `dead_letters`: the dead-letter path.
"""
