-- When each target was last read in full (the read that finds accounts changed outside roster,
-- orphans and foreign group members), by a run that went on to apply its plan, and with which
-- configuration: daily runs in between read only the accounts of the persons they evaluate.
CREATE TABLE target_full_reads (
    target       TEXT PRIMARY KEY NOT NULL,
    full_read_at TEXT NOT NULL,
    config_hash  TEXT NOT NULL
);
