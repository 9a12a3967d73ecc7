"""The collector: records a Rithmic market-data stream into PostgreSQL."""
