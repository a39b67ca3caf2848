-- Where the next incremental read of a SQL source starts (`modified_column`): the latest
-- modification time seen by the last read whose run fully landed, as `YYYY-MM-DDTHH:MM:SS[.f]`
-- (the source's own clock, no zone), and when the last full read landed (RFC 3339 UTC).
CREATE TABLE source_watermarks (
    source       TEXT PRIMARY KEY NOT NULL,
    watermark    TEXT NOT NULL,
    full_read_at TEXT NOT NULL
);
