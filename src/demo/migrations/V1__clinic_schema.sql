-- The clinic schema, its two roles, and the caller binding the row-level security policies
-- read. See `src/demo/mod.rs` for why the binding is made this way.

-- Roles are cluster-wide, so several demo databases (and parallel tests) share them:
-- create each once, and tolerate another session creating it at the same moment.
-- Existing roles are never altered here; the backend checks their attributes at start.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_demo_owner') THEN
    BEGIN
      CREATE ROLE mcp_demo_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'mcp_demo_reader') THEN
    BEGIN
      -- The password is not a secret (it is in this file): logging in as this role
      -- grants nothing without the binding key, which only the database owner can read.
      CREATE ROLE mcp_demo_reader LOGIN PASSWORD 'mcp_demo_reader'
        NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT NOREPLICATION;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO mcp_demo_reader', current_database());
  EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO mcp_demo_owner', current_database());
END $$;

CREATE SCHEMA clinic AUTHORIZATION mcp_demo_owner;
CREATE SCHEMA clinic_private AUTHORIZATION mcp_demo_owner;

-- Everything below is owned by mcp_demo_owner (not the migrating superuser).
SET LOCAL ROLE mcp_demo_owner;

CREATE TABLE clinic.patients (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL CHECK (name <> '' AND name = btrim(name)),
  department text NOT NULL,
  date_of_birth date NOT NULL,
  research_consent boolean NOT NULL DEFAULT false
);
-- Patients are identified by name regardless of case ("Erin oRTEga" = "erin ortega"):
-- two patients can never differ only by case, so a case-insensitive match names one.
CREATE UNIQUE INDEX patients_name_case_insensitive ON clinic.patients (lower(name));

CREATE TABLE clinic.medical_records (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  patient_id integer NOT NULL REFERENCES clinic.patients (id),
  visit_date date NOT NULL,
  diagnosis text NOT NULL,
  treatment text NOT NULL,
  notes text NOT NULL DEFAULT ''
);
CREATE INDEX medical_records_patient ON clinic.medical_records (patient_id);

-- The key that proves a binding comes from the backend. Random per database, readable
-- only by the owner (and superusers): the backend reads it once at start.
CREATE TABLE clinic_private.binding_key (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  key text NOT NULL
);
INSERT INTO clinic_private.binding_key (key)
VALUES (gen_random_uuid()::text || gen_random_uuid()::text);

-- Bind the caller to the current transaction: a temporary table owned by
-- mcp_demo_owner, dropped at the end of the transaction. Called by the backend in a
-- read-write transaction that it then switches to READ ONLY before running anything
-- else, so afterwards nobody in the transaction can create, change or replace it.
CREATE FUNCTION clinic_private.bind_caller(
  p_key text, p_user text, p_roles text[], p_patient text, p_department text
) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_key IS NULL OR NOT EXISTS (
    SELECT FROM clinic_private.binding_key k WHERE k.key = p_key
  ) THEN
    RAISE EXCEPTION 'caller binding refused' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- Fails if a binding already exists in this session: one binding per transaction.
  CREATE TEMPORARY TABLE clinic_caller (
    user_name text,
    roles text[] NOT NULL,
    patient text,
    department text
  ) ON COMMIT DROP;
  INSERT INTO pg_temp.clinic_caller
  VALUES (p_user, coalesce(p_roles, '{}'), p_patient, p_department);
END
$$;

-- The caller bound to this transaction; no row when there is none. Only a binding made
-- by bind_caller counts: the temporary table must belong to mcp_demo_owner (a table a
-- session created for itself under the same name is ignored).
CREATE FUNCTION clinic_private.caller()
RETURNS TABLE (user_name text, roles text[], patient text, department text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF EXISTS (
    SELECT FROM pg_catalog.pg_class c
    WHERE c.oid = pg_catalog.to_regclass('pg_temp.clinic_caller')
      AND c.relowner = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
  ) THEN
    RETURN QUERY SELECT b.user_name, b.roles, b.patient, b.department FROM pg_temp.clinic_caller b;
  END IF;
END
$$;

-- Functions are executable by PUBLIC by default: not these.
REVOKE ALL ON FUNCTION clinic_private.bind_caller(text, text, text[], text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION clinic_private.caller() FROM PUBLIC;

-- The reader may SELECT the two tables and call the two functions; nothing else.
GRANT USAGE ON SCHEMA clinic, clinic_private TO mcp_demo_reader;
GRANT SELECT ON clinic.patients, clinic.medical_records TO mcp_demo_reader;
GRANT EXECUTE ON FUNCTION clinic_private.bind_caller(text, text, text[], text, text) TO mcp_demo_reader;
GRANT EXECUTE ON FUNCTION clinic_private.caller() TO mcp_demo_reader;

-- Back to the migrating role (refinery records the migration in this transaction).
RESET ROLE;
