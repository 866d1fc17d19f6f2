//! The checked-in `reports/schema.json` that every `summary.json` matches.

/// A validator of `reports/schema.json`.
pub fn report_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/reports/schema.json"))
        .expect("cannot read reports/schema.json");
    let schema = serde_json::from_str(&text).expect("reports/schema.json is JSON");
    jsonschema::draft202012::new(&schema).expect("reports/schema.json is a JSON schema")
}
