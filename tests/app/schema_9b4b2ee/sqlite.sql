-- The schema that release 9b4b2ee created with create_all (sqlite), before Alembic owned it.
-- tests/app/test_migrate.py fills a database made from it and upgrades it.

CREATE TABLE sweeps (
	id INTEGER NOT NULL,
	name VARCHAR(200) NOT NULL,
	preset VARCHAR(50),
	base JSON NOT NULL,
	grid JSON NOT NULL,
	seeds JSON NOT NULL,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id)
);

CREATE TABLE workers (
	name VARCHAR(200) NOT NULL,
	last_seen DATETIME NOT NULL,
	PRIMARY KEY (name)
);

CREATE INDEX ix_workers_last_seen ON workers (last_seen);

CREATE TABLE runs (
	id INTEGER NOT NULL,
	sweep_id INTEGER,
	status VARCHAR(16) NOT NULL,
	config JSON NOT NULL,
	dataset VARCHAR(32) NOT NULL,
	activation VARCHAR(32) NOT NULL,
	lr_ratio VARCHAR(32) NOT NULL,
	augmentation VARCHAR(32) NOT NULL,
	seed INTEGER NOT NULL,
	attempts INTEGER NOT NULL,
	cancel_requested BOOLEAN NOT NULL,
	worker VARCHAR(200),
	queued_at DATETIME NOT NULL,
	started_at DATETIME,
	finished_at DATETIME,
	heartbeat_at DATETIME,
	updated_at DATETIME NOT NULL,
	epochs_done INTEGER NOT NULL,
	epochs_total INTEGER NOT NULL,
	train_seconds FLOAT NOT NULL,
	final_test_acc FLOAT,
	best_test_acc FLOAT,
	best_epoch INTEGER,
	result JSON,
	environment JSON,
	error TEXT,
	checkpoint_path VARCHAR(500),
	PRIMARY KEY (id),
	FOREIGN KEY(sweep_id) REFERENCES sweeps (id) ON DELETE SET NULL
);

CREATE INDEX ix_runs_activation ON runs (activation);

CREATE INDEX ix_runs_status ON runs (status);

CREATE INDEX ix_runs_lr_ratio ON runs (lr_ratio);

CREATE INDEX ix_runs_sweep_id ON runs (sweep_id);

CREATE INDEX ix_runs_dataset ON runs (dataset);

CREATE INDEX ix_runs_updated_at ON runs (updated_at);

CREATE INDEX ix_runs_augmentation ON runs (augmentation);

CREATE INDEX ix_runs_best_test_acc ON runs (best_test_acc);

CREATE INDEX ix_runs_final_test_acc ON runs (final_test_acc);

CREATE TABLE metrics (
	id INTEGER NOT NULL,
	run_id INTEGER NOT NULL,
	epoch INTEGER NOT NULL,
	lr FLOAT NOT NULL,
	train_loss FLOAT,
	train_acc FLOAT,
	test_loss FLOAT,
	test_acc FLOAT,
	seconds FLOAT NOT NULL,
	images_per_second FLOAT NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (run_id, epoch),
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
