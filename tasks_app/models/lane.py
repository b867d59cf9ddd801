"""Lanes' fenced resume points and the record of every slice."""

from django.db import models

from rotation.store import EndReason
from tasks_app.models.topic import ConsumerGroup, Topic


class LaneState(models.Model):
    """The fenced truth about one lane (group, topic, partition).

    `epoch` is the newest fencing token that acquired the lane; outcomes and
    `next_offset` are written only under `epoch = holder's token`, so a holder
    whose lease expired (paused process, network split) cannot write anything.
    """

    group = models.ForeignKey(ConsumerGroup, on_delete=models.CASCADE)
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE)
    partition = models.IntegerField()
    epoch = models.BigIntegerField(default=0, help_text="Newest fencing token.")
    next_offset = models.BigIntegerField(
        default=0, help_text="Offset the next holder starts at."
    )
    settled = models.BooleanField(
        default=True, help_text="The last holder lived to record its slice's end."
    )
    careful_until = models.BigIntegerField(
        default=0,
        help_text="A holder died before this offset: each task below it is counted "
        "as running before its handler starts (the handler may kill workers).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "topic", "partition"], name="lane_unique"
            )
        ]
        # Members and stats are not models; operators read them with this.
        permissions = [("view_rotation", "Can view live members and stats")]

    def __str__(self) -> str:
        return f"{self.group_id}/{self.topic_id}/{self.partition}"


class Slice(models.Model):
    """One turn of one member on one lane."""

    group = models.ForeignKey(ConsumerGroup, on_delete=models.CASCADE)
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE)
    partition = models.IntegerField()
    member = models.CharField(max_length=255, help_text="hostname:pid of the worker.")
    token = models.BigIntegerField(help_text="Fencing token of the lease.")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField()
    messages = models.PositiveIntegerField(default=0)
    first_offset = models.BigIntegerField(null=True, blank=True)
    last_offset = models.BigIntegerField(null=True, blank=True)
    end_reason = models.CharField(
        max_length=16, choices=[(reason.value, reason.value) for reason in EndReason]
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["topic", "partition", "id"], name="slice_lane_id"),
            # The dashboard reads the slices of the last minutes.
            models.Index(fields=["ended_at"], name="slice_ended_at"),
        ]

    def __str__(self) -> str:
        return f"slice {self.id} {self.topic_id}/{self.partition} by {self.member}"


class PartitionHead(models.Model):
    """The offset after the last task published to one partition of a topic.

    Written by the publisher from delivery reports, so the rotation knows where
    a lane's log ends without asking Kafka for high watermarks.
    """

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE)
    partition = models.IntegerField()
    end_offset = models.BigIntegerField(default=0)
    lost = models.BooleanField(
        default=False,
        help_text="Kafka lost messages PostgreSQL still holds; the lane re-publishes "
        "its unfinished tasks before it runs anything.",
    )
    lost_reason = models.TextField(blank=True, default="", help_text="How it was seen.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["topic", "partition"], name="head_unique")
        ]

    def __str__(self) -> str:
        return f"{self.topic_id}/{self.partition} ends at {self.end_offset}"
