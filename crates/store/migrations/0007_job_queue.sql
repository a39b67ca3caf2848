-- The daemon's job queue (`roster serve`): a job asked for (by its schedule, a trigger, an
-- approval, a SCIM push) waits here until it has run, so that neither a crash nor a failover to
-- another daemon on the same store loses it. A row with started_at set was running when its daemon
-- stopped: the next leader runs it again first (its run converges through the audit intents).
CREATE TABLE job_queue (
    id         INTEGER PRIMARY KEY NOT NULL,
    job        TEXT NOT NULL,
    -- Who asked (`serve:JOB`, `api:NAME`, `scim:SOURCE`).
    actor      TEXT NOT NULL,
    -- JSON array: the command line of a job that is not configured; [] for a configured job.
    args       TEXT NOT NULL,
    queued_at  TEXT NOT NULL,
    started_at TEXT
);
