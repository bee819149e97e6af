-- Synthetic patients and records. Some names have odd casing on purpose, so that case
-- handling is exercised end to end. Nothing here is real.
SET LOCAL ROLE mcp_demo_owner;

INSERT INTO clinic.patients (name, department, date_of_birth, research_consent) VALUES
  ('Erin oRTEga',    'cardiology', '1985-03-14', true),
  ('DAvID AndErSON', 'oncology',   '1972-11-02', false),
  ('Alice Martin',   'cardiology', '1990-07-21', false),
  ('bob nguyen',     'cardiology', '1968-01-30', true),
  ('Carla Rossi',    'oncology',   '1979-05-09', true),
  ('Frank O''Neil',  'pediatrics', '2012-09-17', false),
  ('Grace Kim',      'pediatrics', '2015-02-11', true),
  ('Hiro Tanaka',    'oncology',   '1958-12-25', false);

INSERT INTO clinic.medical_records (patient_id, visit_date, diagnosis, treatment, notes)
SELECT p.id, r.visit_date::date, r.diagnosis, r.treatment, r.notes
FROM (VALUES
  ('Erin oRTEga',    '2024-02-10', 'atrial fibrillation',     'apixaban 5 mg twice daily', 'palpitations for two weeks'),
  ('Erin oRTEga',    '2024-08-22', 'atrial fibrillation',     'ablation scheduled',        'stable on anticoagulation'),
  ('DAvID AndErSON', '2023-11-05', 'non-Hodgkin lymphoma',    'R-CHOP, cycle 1',           'tolerating well'),
  ('DAvID AndErSON', '2024-03-18', 'non-Hodgkin lymphoma',    'R-CHOP, cycle 6',           'complete response on PET'),
  ('Alice Martin',   '2024-05-02', 'hypertension',            'amlodipine 5 mg',           'home readings 150/95'),
  ('bob nguyen',     '2024-01-15', 'stable angina',           'nitroglycerin as needed',   'exercise test positive'),
  ('bob nguyen',     '2024-06-30', 'coronary artery disease', 'stent placed in LAD',       'discharged day 2'),
  ('Carla Rossi',    '2024-04-11', 'breast cancer, stage I',  'lumpectomy',                'margins clear'),
  ('Frank O''Neil',  '2024-09-03', 'asthma',                  'salbutamol inhaler',        'triggered by exercise'),
  ('Grace Kim',      '2024-10-19', 'otitis media',            'amoxicillin 10 days',       'follow up in 3 weeks'),
  ('Hiro Tanaka',    '2024-07-07', 'prostate cancer',         'active surveillance',       'PSA 4.8')
) AS r (name, visit_date, diagnosis, treatment, notes)
JOIN clinic.patients p ON p.name = r.name;

-- Back to the migrating role (refinery records the migration in this transaction).
RESET ROLE;
