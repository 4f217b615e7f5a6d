//! Rendering of review reports for people and spreadsheets.

use serde_json::Value;

const ACCESS_COLUMNS: [&str; 12] = [
    "tenant",
    "principal",
    "kind",
    "name",
    "owner",
    "disabled",
    "scopes",
    "audiences",
    "acts_for",
    "delegates_to",
    "last_issued_at",
    "last_used_at",
];

/// The access report as RFC 4180 CSV: one row per principal; lists joined with spaces,
/// grants as `principal(scopes)`.
pub fn access_csv(rows: &[Value]) -> String {
    let mut out = ACCESS_COLUMNS.join(",");
    out.push_str("\r\n");
    for row in rows {
        let cells: Vec<String> = ACCESS_COLUMNS
            .iter()
            .map(|c| field(&row[*c], c))
            .map(|s| quote(&s))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn field(v: &Value, column: &str) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) if column == "acts_for" || column == "delegates_to" => items
            .iter()
            .map(|g| {
                format!(
                    "{}({})",
                    crate::json::field(g, "principal")
                        .as_str()
                        .unwrap_or_default(),
                    crate::json::field(g, "scopes").as_str().unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// Quotes a cell when it holds a separator, a quote or a line break; a leading `=`, `+`, `-`
/// or `@` is neutralised so a spreadsheet never evaluates a name as a formula.
fn quote(cell: &str) -> String {
    let cell = if cell.starts_with(['=', '+', '-', '@']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if cell.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_and_neutralises_formulas() {
        let rows = [json!({
            "tenant": "tnt_1", "principal": "agt_1", "kind": "agent", "name": "=cmd, \"x\"",
            "owner": null, "disabled": false, "scopes": "a:read b:write", "audiences": ["crm"],
            "acts_for": [{"principal": "usr_1", "scopes": "a:read"}], "delegates_to": [],
            "last_issued_at": 5, "last_used_at": null
        })];
        let csv = access_csv(&rows);
        let mut lines = csv.split("\r\n");
        assert_eq!(lines.next(), Some(ACCESS_COLUMNS.join(",").as_str()));
        assert_eq!(
            lines.next(),
            Some("tnt_1,agt_1,agent,\"'=cmd, \"\"x\"\"\",,false,a:read b:write,crm,usr_1(a:read),,5,")
        );
    }
}
