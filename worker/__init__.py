"""ResNet Lab's Celery worker: one task that trains one run through `trainer.train`."""
