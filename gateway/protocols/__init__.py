"""Sans-IO codecs: pure functions between wire data (bytes, registers) and typed values;
the Modbus register-map profiles (`profile_schema`, the bundled `profiles/`)."""
