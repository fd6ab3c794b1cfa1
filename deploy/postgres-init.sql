-- Run once by the postgres image on an empty data directory (docker-compose.yml).
-- One database per service: POSTGRES_DB creates `heimdall` (Heimdall's own tables,
-- HEIMDALL_DATABASE_URL); MLflow's runs and model registry get their own.
CREATE DATABASE mlflow OWNER heimdall;
