"""What the web app and the workers share: settings, database models and migrations, the run
lifecycle, the queue, and worker-process supervision. Depends on `trainer` only; `app` and
`worker` depend on it and never on each other (import-linter checks it: `make lint`)."""
