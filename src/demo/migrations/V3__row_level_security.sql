-- Row-level security: the real gate. Enabled and FORCED (the owner is subject to it too;
-- only superusers and BYPASSRLS roles skip it, and the reader is neither). Every policy
-- reads the caller bound to the transaction through clinic_private.caller(); with no
-- binding every policy is false, so a query sees no rows at all.
SET LOCAL ROLE mcp_demo_owner;

ALTER TABLE clinic.patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic.patients FORCE ROW LEVEL SECURITY;
ALTER TABLE clinic.medical_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinic.medical_records FORCE ROW LEVEL SECURITY;

-- A patient sees themself (names compare case-insensitively; they are unique that way).
CREATE POLICY patient_sees_self ON clinic.patients
  FOR SELECT TO mcp_demo_reader
  USING (lower(name) = lower((SELECT c.patient FROM clinic_private.caller() c)));

-- A nurse sees the patients of their department.
CREATE POLICY nurse_sees_department ON clinic.patients
  FOR SELECT TO mcp_demo_reader
  USING (
    (SELECT 'nurse' = ANY (c.roles) FROM clinic_private.caller() c)
    AND lower(department) = lower((SELECT c.department FROM clinic_private.caller() c))
  );

-- An analyst sees the patients who consented to research.
CREATE POLICY analyst_sees_research_consent ON clinic.patients
  FOR SELECT TO mcp_demo_reader
  USING (
    research_consent
    AND (SELECT 'analyst' = ANY (c.roles) FROM clinic_private.caller() c)
  );

-- A record is visible exactly when its patient is (the subquery is itself under the
-- patients policies above, evaluated for the same caller).
CREATE POLICY records_of_visible_patients ON clinic.medical_records
  FOR SELECT TO mcp_demo_reader
  USING (EXISTS (SELECT FROM clinic.patients p WHERE p.id = patient_id));

-- Back to the migrating role (refinery records the migration in this transaction).
RESET ROLE;
