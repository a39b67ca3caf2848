-- The sources each person has a record of, so that a daily run can read who is known where
-- without reading (and decoding) every person's records: a plan uses a stored record only where
-- the run read none from its source. JSON array of source names, sorted ([] for none).
ALTER TABLE persons ADD COLUMN sources TEXT NOT NULL DEFAULT '[]';
UPDATE persons SET sources = coalesce(
    (SELECT json_agg(k ORDER BY k)::text FROM json_object_keys(records::json) AS k), '[]');
