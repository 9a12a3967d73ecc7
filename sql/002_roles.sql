-- The API's database role reads market data and may write only the subscription table.
-- Created without a password: deployments set one (or use IAM auth through RDS Proxy).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rdc_api') THEN
        CREATE ROLE rdc_api NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO rdc_api;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO rdc_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO rdc_api;
GRANT INSERT, UPDATE ON subscriptions TO rdc_api;
