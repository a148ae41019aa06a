//! fake-llm
