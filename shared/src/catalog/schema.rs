//! A small JSON Schema checker for the subset the catalogs use (`type`, `properties`,
//! `required`, `additionalProperties: false`, `enum`, `minimum`, `maximum`, `items`,
//! `minItems`, `minLength`, `maxLength`, `additionalProperties` as a schema), reporting every problem with its field path. A full validator crate
//! would be heavier than what these schemas need.

use serde_json::Value;

use crate::model::Problems;

/// Check `value` against `schema`, adding problems under `path`.
pub fn validate(schema: &Value, value: &Value, path: &str, p: &mut Problems) {
    let at = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            _ => true,
        };
        if !ok {
            p.add(path_or_root(path), format!("must be of type {ty}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let list: Vec<String> = options.iter().map(|o| o.to_string()).collect();
        p.add(
            path_or_root(path),
            format!("must be one of {}", list.join(", ")),
        );
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            p.add(path_or_root(path), format!("must be at least {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            p.add(path_or_root(path), format!("must be at most {max}"));
        }
    }
    if let Some(text) = value.as_str() {
        let len = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            p.add(
                path_or_root(path),
                format!("must be at least {min} characters"),
            );
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            p.add(
                path_or_root(path),
                format!("must be at most {max} characters"),
            );
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (array.len() as u64) < min
        {
            p.add(
                path_or_root(path),
                format!("must have at least {min} item(s)"),
            );
        }
        for (i, item) in array.iter().enumerate() {
            validate(items, item, &format!("{}[{i}]", path_or_root(path)), p);
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = required.as_str()
                && !object.contains_key(name)
            {
                p.add(at(name), "is required");
            }
        }
        for (name, field) in object {
            match properties.and_then(|props| props.get(name)) {
                Some(sub) => validate(sub, field, &at(name), p),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => p.add(at(name), "unknown field"),
                    Some(sub @ Value::Object(_)) => validate(sub, field, &at(name), p),
                    _ => {}
                },
            }
        }
    }
}

fn path_or_root(path: &str) -> String {
    if path.is_empty() {
        "body".into()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_problem_with_its_path() {
        let schema = json!({"type": "object", "additionalProperties": false, "required": ["limit"],
            "properties": {"limit": {"type": "integer", "minimum": 1},
                           "mode": {"type": "string", "enum": ["a", "b"]},
                           "list": {"type": "array", "items": {"type": "string"}}}});
        let mut p = Problems::default();
        validate(
            &schema,
            &json!({"limit": 0, "mode": "c", "list": ["x", 1], "extra": true}),
            "settings",
            &mut p,
        );
        let fields: Vec<_> = p.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "settings.extra",
                "settings.limit",
                "settings.list[1]",
                "settings.mode"
            ]
        );
        let mut p = Problems::default();
        validate(&schema, &json!({}), "settings", &mut p);
        assert_eq!(p.0[0].field, "settings.limit");
        let mut p = Problems::default();
        validate(&schema, &json!({"limit": 3}), "settings", &mut p);
        assert!(p.is_empty());
    }
}
