-- Initial schema (PostgreSQL). Times are BIGINT unix microseconds; JSON is TEXT, not jsonb, so
-- payload numbers and key order keep their exact text (the audit hash depends on it, and money
-- never passes through a float).

CREATE TABLE events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source           TEXT   NOT NULL,
    source_event_key TEXT   NOT NULL,
    kind             TEXT   NOT NULL,
    payload          TEXT   NOT NULL,
    received_at      BIGINT NOT NULL,
    UNIQUE (source, source_event_key)
);

CREATE TABLE jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         BIGINT  NOT NULL REFERENCES events (id),
    flow             TEXT    NOT NULL,
    state            TEXT    NOT NULL
        CHECK (state IN ('pending', 'running', 'retrying', 'succeeded', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    run_at           BIGINT  NOT NULL,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    last_error       TEXT,
    last_error_class TEXT,
    payload_override TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    finished_at      BIGINT,
    UNIQUE (event_id, flow),
    CONSTRAINT jobs_running_has_lease
        CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_final_has_finished_at
        CHECK ((state IN ('succeeded', 'dead', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT jobs_dead_has_error
        CHECK (state <> 'dead' OR last_error IS NOT NULL)
);

-- The claim query: due pending/retrying jobs in run_at order.
CREATE INDEX jobs_claim_idx ON jobs (state, run_at, id);
-- The rescue half of the claim: running jobs whose lease expired.
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'running';

CREATE TABLE effects (
    system           TEXT   NOT NULL,
    record_type      TEXT   NOT NULL,
    idempotency_key  TEXT   NOT NULL,
    remote_id        TEXT   NOT NULL,
    -- No foreign key: an effect in the crosswalk must outlive any job cleanup.
    job_id           BIGINT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (system, record_type, idempotency_key)
);

CREATE TABLE audit (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT   NOT NULL,
    action     TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    event_id   BIGINT,
    job_id     BIGINT,
    remote_id  TEXT,
    details    TEXT   NOT NULL,
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL
);
CREATE INDEX audit_subject_idx ON audit (subject, seq);

-- One row: the chain's tip. Appenders lock it FOR UPDATE so the chain never forks, even with
-- several processes.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE cursors (
    name       TEXT PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE permits (
    pool       TEXT    NOT NULL,
    slot       INTEGER NOT NULL CHECK (slot >= 0),
    owner      TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL,
    PRIMARY KEY (pool, slot)
);
