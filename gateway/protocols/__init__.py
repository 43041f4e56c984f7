"""Sans-IO codecs: pure functions between wire data (bytes, registers) and typed values."""
