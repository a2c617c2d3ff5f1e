"""Models the tests use as "business data" and as an execution log for worker tests."""

from django.db import models


class Order(models.Model):
    """Business data written in the same transaction as an enqueue."""

    reference = models.CharField(max_length=50)

    def __str__(self) -> str:
        return self.reference


class Execution(models.Model):
    """One row per handler execution, written by test handlers (not by pgqrs)."""

    msg_id = models.BigIntegerField(db_index=True)
    pid = models.IntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    # The lease it ran under: the message's read_ct and the worker that claimed it (the chaos
    # test accounts every duplicate execution to a killed worker's lease).
    read_ct = models.IntegerField(default=0)
    worker_id = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return f"execution of {self.msg_id} in {self.pid}"
