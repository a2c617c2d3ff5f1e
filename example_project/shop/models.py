from django.db import models


class Customer(models.Model):
    """Business data: a signup enqueues its welcome email in the same transaction."""

    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email
