-- training progress written by the process that runs a job (the coordinator), read by the bot processes
CREATE TABLE job_progress (
    job_id BIGINT PRIMARY KEY REFERENCES training_jobs(id) ON DELETE CASCADE,
    progress TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
