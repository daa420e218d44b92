"""The state schema, as an ordered list of named migrations.

The schema changes only by appending a migration here. Each runs in its own
transaction and is recorded in `migrations`; a state that records a migration this
list does not know was written by a newer mlform and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_initial",
        """
        create table meta (
            lineage varchar not null,
            serial bigint not null,
            created_at timestamptz not null,
            written_by varchar not null
        );
        create table resources (
            address varchar not null,
            kind varchar not null,
            name varchar not null,
            digest varchar,              -- of the last successful apply; null if none yet
            components varchar not null, -- json: what the digest is made of
            spec varchar not null,       -- json: the canonical spec as applied
            outputs varchar not null,    -- json: what applying produced (version, paths…)
            status varchar not null,     -- applied | failed
            error varchar,
            protect boolean not null,
            source varchar not null,
            applied_at timestamptz not null,
            apply_id varchar not null
        );
        create table asset_versions (
            kind varchar not null,
            name varchar not null,
            version varchar not null,
            content_digest varchar not null,
            spec varchar not null,
            manifest varchar not null,  -- json: files with sizes and digests
            location varchar not null,  -- where the content is kept
            size bigint not null,
            created_at timestamptz not null,
            apply_id varchar not null,
            archived boolean not null default false
        );
        create table environment_builds (
            build_digest varchar not null,
            path varchar not null,
            python varchar not null,
            packages varchar not null,  -- json: pip freeze of the built environment
            built_at timestamptz not null,
            seconds double not null
        );
        create table applies (
            id varchar not null,
            started_at timestamptz not null,
            ended_at timestamptz,
            status varchar not null,     -- running | succeeded | failed | interrupted
            pid integer not null,
            host varchar not null,
            summary varchar
        );
        create table events (
            occurred_at timestamptz not null,
            apply_id varchar not null,
            address varchar not null,
            action varchar not null,
            status varchar not null,     -- succeeded | failed | skipped
            message varchar
        );
        """,
    ),
    Migration(
        "0002_runs",
        """
        create table experiments (
            name varchar not null,
            created_at timestamptz not null
        );
        create table runs (
            id varchar not null,
            experiment varchar not null,
            runconfig varchar,           -- the address it ran for; null for offline runs
            parent_id varchar,
            name varchar not null,       -- a child run's name; the runconfig's otherwise
            display_name varchar,
            status varchar not null,     -- see mlform.state.runs.STATUSES
            created_at timestamptz not null,
            started_at timestamptz,
            ended_at timestamptz,
            duration double,
            git_commit varchar,
            branch varchar,
            remote varchar,
            dirty boolean,
            snapshot_id varchar,
            inputs varchar not null,     -- json: name → literal, or data asset name:version
            environment varchar,         -- name:version
            env_digest varchar,
            compute varchar not null,
            command varchar,
            exit_code integer,
            error varchar,
            log_tail varchar,
            digest varchar,              -- the runconfig digest this run satisfies
            run_dir varchar not null,
            apply_id varchar
        );
        create table params (run_id varchar not null, key varchar not null, value varchar);
        create table tags (run_id varchar not null, key varchar not null, value varchar);
        create table metrics (
            run_id varchar not null,
            key varchar not null,
            step bigint not null,
            ts bigint not null,          -- milliseconds since the epoch
            value double
        );
        create table artifacts (
            run_id varchar not null,
            path varchar not null,
            size bigint not null
        );
        create table snapshots (
            id varchar not null,         -- the content digest
            key varchar not null,        -- where the zip is kept in the default datastore
            files integer not null,
            size bigint not null,
            created_at timestamptz not null
        );
        """,
    ),
    Migration(
        "0003_registry",
        """
        create table models (
            name varchar not null,
            version varchar not null,
            digest varchar not null,     -- tree digest of every file's path, size and sha256
            type varchar not null,       -- custom_model | mlflow_model
            framework varchar,           -- scikit-learn, onnx, or an MLflow model's flavors
            files varchar not null,      -- json: [{path, size, sha256}], kept as blobs
            size bigint not null,
            tags varchar not null,       -- json
            description varchar,
            source varchar not null,     -- what registered it: a run, a models/ file, the CLI
            run_id varchar,              -- lineage: the run that produced it
            metrics varchar not null,    -- json: that run's final metrics (for `> latest`)
            datastore varchar not null,  -- where its files are kept
            created_at timestamptz not null,
            apply_id varchar not null,
            archived boolean not null default false,
            deleted boolean not null default false
        );
        create table images (
            name varchar not null,
            version varchar not null,
            reference varchar not null,  -- repository:tag as built
            image_id varchar not null,
            digest varchar not null,     -- of what went in (base, packages, model, code)
            model varchar not null,      -- name:version
            environment varchar not null, -- name:version
            env_digest varchar not null,
            script_digest varchar not null,
            base_image varchar not null,
            size bigint not null,
            pushed varchar,              -- registry reference@sha256:… once pushed
            seconds double not null,
            created_at timestamptz not null,
            apply_id varchar not null
        );
        -- Filled by endpoints; the registry reads it to refuse deleting a model in use.
        create table deployments (
            endpoint varchar not null,
            name varchar not null,
            model varchar,               -- name:version it serves
            image varchar,
            compute varchar not null,
            status varchar not null,     -- creating | running | failed | stopped | deleted
            created_at timestamptz not null,
            updated_at timestamptz not null
        );
        """,
    ),
    Migration(
        "0004_endpoints",
        """
        alter table deployments add column digest varchar;    -- of what the instance serves
        alter table deployments add column port integer;      -- on 127.0.0.1
        alter table deployments add column handle varchar;    -- pid, or container id
        alter table deployments add column instance varchar;  -- unique per start
        alter table deployments add column weight integer;    -- its share of traffic
        alter table deployments add column log varchar;       -- where its output goes
        alter table deployments add column error varchar;
        """,
    ),
    Migration(
        "0005_pipelines",
        """
        create table step_runs (
            pipeline varchar not null,
            step varchar not null,
            digest varchar not null,     -- command, code, environment, parameters, inputs
            run_id varchar not null,     -- the child run that did it, or reused it
            status varchar not null,     -- completed | failed | reused
            outputs varchar not null,    -- json: output name → {path, digest}
            components varchar not null, -- json: what the digest is made of, for reasons
            reused_from varchar,         -- the run whose outputs were linked
            created_at timestamptz not null
        );
        alter table runs add column reused_from varchar;
        """,
    ),
    Migration(
        "0006_model_folder",
        """
        -- the registered folder's name, under which a deployment finds the files (as Azure
        -- ML mounts them); null when a single file was registered
        alter table models add column folder varchar;
        """,
    ),
    Migration(
        "0007_run_sequence",
        """
        -- the order runs were first recorded in: two runs created within one clock tick
        -- (or on a coarse clock) tie on created_at, and their random ids do not say which
        -- came first
        alter table runs add column seq bigint;
        update runs set seq = numbered.n
        from (select id, row_number() over (order by created_at, id) as n from runs) numbered
        where runs.id = numbered.id;
        """,
    ),
    Migration(
        "0008_workspace_name",
        """
        -- the `name:` of the workspace that applies to this state: another workspace
        -- pointed at it would plan to destroy all it holds. Null until the first apply
        -- of an mlform that records it, which adopts its workspace's name.
        alter table meta add column workspace varchar;
        """,
    ),
    Migration(
        "0009_access",
        """
        -- API tokens of mlform's own servers (mlform.access): never a secret, only the
        -- salt and scrypt hash of each. `mlform tokens` writes them, and a copy of them to
        -- access/tokens.json, which the servers read.
        create table tokens (
            id varchar not null,         -- the token's public part: mlf_<id>_<secret>
            name varchar not null,
            role varchar not null,       -- reader | operator | admin
            salt varchar not null,       -- hex
            hash varchar not null,       -- scrypt$N$r$p$hex of the secret
            created_at timestamptz not null,
            created_by varchar not null,
            expires_at timestamptz,      -- null: never
            revoked_at timestamptz,
            last_used_at timestamptz
        );
        -- The audit log: who did it (a git author, an OS user, a token's name, "anonymous"),
        -- from where (cli, pipeline endpoint). The events of an apply's changes have no
        -- actor: the apply's own event has. Servers' events come through a journal file,
        -- and its line id makes ingesting one twice harmless.
        alter table events add column actor varchar;
        alter table events add column source varchar;
        alter table events add column event_id varchar;
        alter table events alter column apply_id drop not null;
        """,
    ),
    Migration(
        "0010_run_files",
        """
        -- A run's outputs and logs as kept in the default datastore when it ended: the
        -- digest of a manifest blob naming each file's blob (mlform.storage.folders), so
        -- a run applied on one machine can be downloaded and read on another.
        create table run_files (run_id varchar not null, manifest varchar not null);
        """,
    ),
    Migration(
        "0011_agent",
        """
        -- What `mlform agent` reconciled: each commit of the branch it follows, and what
        -- became of it (applied, no changes, failed, invalid, waiting for approval). The
        -- latest row is the commit the state reflects, for `state show` and `plan`.
        create table syncs (
            commit_sha varchar not null,
            branch varchar,
            synced_at timestamptz not null,
            result varchar not null,
            detail varchar
        );
        -- A plan the agent holds back under the `require_approval` policy: applied once
        -- `mlform agent approve` records who approved that very plan (its digest).
        create table approvals (
            commit_sha varchar not null,
            plan varchar not null,
            summary varchar not null,
            requested_at timestamptz not null,
            approved_at timestamptz,
            approved_by varchar
        );
        """,
    ),
    Migration(
        "0012_schedule_fires",
        """
        -- Each occurrence of a schedule that ran its job: the latest one a schedule was
        -- due at (`occurrence`), how many before it since the last fire were missed and
        -- run with it, and the apply that ran the job (its outcome is that apply's).
        create table schedule_fires (
            schedule varchar not null,
            occurrence timestamptz not null,
            missed integer not null,
            job varchar not null,
            fired_at timestamptz not null,
            apply_id varchar not null
        );
        """,
    ),
    Migration(
        "0013_monitor_results",
        """
        -- Each monitor run's values, one row per signal, feature and metric (the run
        -- itself is a row of runs, its values metrics too): with the threshold it was
        -- held to and whether it breached, over which window of production data.
        create table monitor_results (
            run_id varchar not null,
            monitor varchar not null,
            signal varchar not null,
            signal_type varchar not null,
            feature varchar,
            metric varchar not null,
            value double,
            threshold double,
            breached boolean not null,
            window_start timestamptz not null,
            window_end timestamptz not null,
            note varchar
        );
        """,
    ),
)
