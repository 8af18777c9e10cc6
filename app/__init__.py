"""ResNet Lab's web service: REST API, HTML pages and server-sent events. Never imports torch."""
