//! Reading a config: TOML syntax → `${VAR}` and `*_file` resolution → shape (serde) → rules.
//!
//! Shape errors do not stop the load: the offending key is removed and deserialisation runs
//! again, so one pass reports every unknown key and every mistyped value, then the semantic
//! rules run over what is left. Rule errors on a key that already had a shape error are
//! dropped, so a mistyped `servers` is reported once, not also as "missing".

use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;
use toml::Value;

use crate::error::{did_you_mean, ConfigError, ConfigErrors};
use crate::raw::RawConfig;
use crate::runtime::Config;
use crate::validate;

pub use crate::source::{process_env, Source};

/// Loads and validates the config file at `path`.
///
/// # Errors
/// Every problem in the file, each naming its key.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        source: name.clone(),
        errors: vec![ConfigError::new("", format!("cannot read the file: {e}"))],
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    load_str(
        &text,
        &Source {
            name,
            base_dir,
            env: &process_env,
        },
    )
}

/// Loads and validates config text.
///
/// # Errors
/// Every problem in the text, each naming its key.
pub fn load_str(text: &str, source: &Source<'_>) -> Result<Config, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        source: source.name.clone(),
        errors,
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let at = e.span().map_or(0, |r| r.start);
        fail(vec![ConfigError::new(syntax_key(text, at), one_line(&msg))])
    })?;
    // `server.env_file`: its variables are seen by `${VAR}` before the process
    // environment's, and it is read again on every reload (so a rotated secret takes effect).
    let env_file = match table
        .get("server")
        .and_then(|s| s.get("env_file"))
        .and_then(Value::as_str)
    {
        None => None,
        Some(p) => {
            let full = source.base_dir.join(p);
            match std::fs::read_to_string(&full) {
                Ok(text) => Some(crate::dotenv::EnvFile::parse(&text)),
                Err(e) => {
                    return Err(fail(vec![ConfigError::new(
                        "server.env_file",
                        format!("cannot read {}: {e}", full.display()),
                    )]))
                }
            }
        }
    };
    let env = |name: &str| -> Option<String> {
        env_file
            .as_ref()
            .and_then(|f| f.get(name))
            .map(str::to_owned)
            .or_else(|| (source.env)(name))
    };
    let source = &Source {
        name: source.name.clone(),
        base_dir: source.base_dir.clone(),
        env: &env,
    };
    let mut root = Value::Table(table);
    let mut errors = Vec::new();
    resolve(&mut root, &mut String::new(), source, &mut errors);

    let mut shape_errored: Vec<String> = errors.iter().map(|e| e.key.clone()).collect();
    let raw = deserialize_all(&mut root, &mut errors, &mut shape_errored);
    let config = validate::validate(raw, source, &mut errors, &shape_errored);
    if errors.is_empty() {
        config.ok_or_else(|| fail(vec![ConfigError::new("", "invalid config")]))
    } else {
        Err(fail(errors))
    }
}

/// The key a syntax error at byte `at` is in: the table header above it (`[[routes]]`
/// counted, so the third is `routes[2]`) and the key on its line, as far as they can be
/// read from the text, so the error names the place as every other error does.
fn syntax_key(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in text[..line_start].lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_owned();
        }
    }
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if line.starts_with('[') {
        // The header itself is broken: name the last good table before it.
        return table;
    }
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'"'))
        })
        .map(|k| k.replace('"', ""));
    match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (_, None) => table,
    }
}

fn one_line(msg: &str) -> String {
    msg.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

// === ${VAR} and *_file ===

fn resolve(v: &mut Value, path: &mut String, source: &Source<'_>, errors: &mut Vec<ConfigError>) {
    match v {
        Value::String(s) if s.contains('$') => match list_var(s) {
            // `key = "${VAR:list}"`: the whole value becomes the list.
            Some(spec) => match expand_list(spec, source.env) {
                Ok(items) => *v = Value::Array(items.into_iter().map(Value::String).collect()),
                Err(msg) => errors.push(ConfigError::new(path.clone(), msg)),
            },
            None => match interpolate(s, source.env) {
                Ok(new) => *s = new,
                Err(msg) => errors.push(ConfigError::new(path.clone(), msg)),
            },
        },
        Value::Array(items) => {
            // `["fixed", "${VAR:list}"]`: a list item expands in place.
            let mut expanded = Vec::with_capacity(items.len());
            for (i, mut item) in std::mem::take(items).into_iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                match item.as_str().and_then(list_var) {
                    Some(spec) => match expand_list(spec, source.env) {
                        Ok(list) => expanded.extend(list.into_iter().map(Value::String)),
                        Err(msg) => errors.push(ConfigError::new(path.clone(), msg)),
                    },
                    None => {
                        resolve(&mut item, path, source, errors);
                        expanded.push(item);
                    }
                }
                path.truncate(len);
            }
            *items = expanded;
        }
        Value::Table(t) => {
            for (k, item) in t.iter_mut() {
                let len = path.len();
                push_key(path, k);
                resolve(item, path, source, errors);
                path.truncate(len);
            }
            // `foo_file = "/run/secrets/foo"` becomes `foo = <file contents>`. The contents
            // are not interpolated: a secret may contain `${`.
            // Keys that name a file rather than hold its contents are left alone.
            const PATH_KEYS: &[&str] = &["server.env_file", "preflight.ca_file"];
            let file_keys: Vec<String> = t
                .keys()
                .filter(|k| k.len() > 5 && k.ends_with("_file"))
                .filter(|k| !PATH_KEYS.contains(&format!("{path}.{k}").as_str()))
                .cloned()
                .collect();
            for fk in file_keys {
                let base = fk.trim_end_matches("_file").to_owned();
                let len = path.len();
                push_key(path, &fk);
                let key_path = path.clone();
                path.truncate(len);
                let Some(Value::String(file)) = t.remove(&fk) else {
                    errors.push(ConfigError::new(key_path, "expected a file path string"));
                    continue;
                };
                if t.contains_key(&base) {
                    errors.push(ConfigError::new(
                        key_path,
                        format!("both `{base}` and `{fk}` are set; keep one"),
                    ));
                    continue;
                }
                let full = source.base_dir.join(&file);
                match std::fs::read_to_string(&full) {
                    Ok(content) => {
                        let content = content.trim_end_matches(['\n', '\r']).to_owned();
                        t.insert(base, Value::String(content));
                    }
                    Err(e) => errors.push(ConfigError::new(
                        key_path,
                        format!("cannot read {}: {e}", full.display()),
                    )),
                }
            }
        }
        _ => {}
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// `${VAR:list}` or `${VAR:list:-a,b}` as a whole value: the part after `${`.
fn list_var(s: &str) -> Option<&str> {
    let body = s.strip_prefix("${")?.strip_suffix('}')?;
    let (name, rest) = body.split_once(":list")?;
    (rest.is_empty() || rest.starts_with(":-"))
        .then_some(body)
        .filter(|_| !name.contains('}'))
}

/// The items of `VAR` split on commas, trimmed, empty ones dropped (`API_KEYS=k1, k2,`).
fn expand_list(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, String> {
    let (name, rest) = spec.split_once(":list").unwrap_or((spec, ""));
    let default = rest.strip_prefix(":-");
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("invalid variable name {name:?} in `${{{spec}}}`"));
    }
    let text = match (env(name), default) {
        (Some(v), _) => v,
        (None, Some(d)) => d.to_owned(),
        (None, None) => {
            return Err(format!(
            "environment variable {name} is not set (write `${{{name}:list:-}}` for an empty list)"
        ))
        }
    };
    Ok(text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` is a literal `${`.
fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(lit) = after.strip_prefix("${") {
            out.push_str("${");
            rest = lit;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.ends_with(":list") {
                return Err(format!(
                    "`${{{expr}}}` must be a whole value or a whole list item, not part of a string"
                ));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("invalid variable name {name:?} in `${{{expr}}}`"));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write `${{{name}:-default}}` for a default)"
                    ))
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

// === shape ===

fn deserialize_all(
    root: &mut Value,
    errors: &mut Vec<ConfigError>,
    shape_errored: &mut Vec<String>,
) -> Option<RawConfig> {
    // Array elements removed so far, by the array's original key path: later errors in the
    // same array are reported with their original index.
    let mut removed: Vec<(String, usize)> = Vec::new();
    // Each pass removes one bad key, so the number of passes is bounded by the keys.
    for _ in 0..512 {
        let err = match serde_path_to_error::deserialize::<_, RawConfig>(root.clone()) {
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let mut segments: Vec<Seg> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                _ => None,
            })
            .collect();
        let msg = err.inner().message().to_owned();
        let message = if let Some(rest) = msg.strip_prefix("unknown field ") {
            let quoted: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
            let field = quoted.first().copied().unwrap_or_default().to_owned();
            if segments.last() != Some(&Seg::Key(field.clone())) {
                segments.push(Seg::Key(field.clone()));
            }
            let hint = nginx_hint(&field)
                .map(|h| format!(": {h}"))
                .or_else(|| {
                    did_you_mean(&field, quoted.iter().skip(1).copied())
                        .map(|c| format!(", did you mean `{c}`?"))
                })
                .unwrap_or_default();
            format!("unknown key{hint}")
        } else {
            msg
        };
        let (key, array_removal) = render(&segments, &removed);
        errors.push(ConfigError::new(key.clone(), message));
        shape_errored.push(key);
        if segments.is_empty() || !remove(root, &segments) {
            return None;
        }
        if let Some(r) = array_removal {
            removed.push(r);
        }
    }
    None
}

/// Where an nginx directive (or a Caddy/Traefik habit) lives in rampart, for a user who
/// wrote it as a key.
fn nginx_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "client_max_body_size" => "nginx's client_max_body_size is `body_limit` on a route (nginx's `500m` means 500 MiB here too)",
        "ssl_protocols" => "nginx's ssl_protocols is `[tls] min_version = \"1.2\"` or `profile = \"modern\"`",
        "ssl_ciphers" => "nginx's ssl_ciphers is `[tls] ciphers = \"…\"` (the same string)",
        "ssl_certificate" | "ssl_certificate_key" => "nginx's ssl_certificate(_key) is `[tls] cert` / `key`",
        "ssl_prefer_server_ciphers" => "rampart follows the client's suite order (Mozilla's advice, nginx `off`); remove it",
        "ssl_session_tickets" => "nginx's ssl_session_tickets is `[tls] session_tickets`",
        "ocsp_stapling" | "ssl_stapling" | "ssl_stapling_verify" => "OCSP stapling is not configurable yet (issue 20, automatic HTTPS); remove it",
        "server_name" => "nginx's server_name is `hosts` on a route or `[server] allowed_hosts`",
        "proxy_pass" => "nginx's proxy_pass is `upstream = \"NAME\"` on a route, with `[upstreams.NAME] servers`",
        "limit_req" | "limit_req_zone" => "nginx's limit_req is `[limits.NAME] rate = \"10/s\"` and `limit = \"NAME\"` on a route",
        "add_header" => "nginx's add_header is `[headers]` (or a route's `headers = { … }`)",
        "keepalive_timeout" => "nginx's keepalive_timeout is `[server] idle_timeout`",
        "listen" => "nginx's listen is `[server] http` / `https`",
        "root" => "nginx's root is `static = \"DIR\"` on a route",
        "return" => "nginx's return is `respond = { status, body }` or `redirect = \"URL\"` on a route",
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Renders the original key path of `segments`, mapping array indices back past earlier
/// removals. Also returns, when the last segment is an index, the (array path, original
/// index) to record if that element is removed.
fn render(segments: &[Seg], removed: &[(String, usize)]) -> (String, Option<(String, usize)>) {
    let mut s = String::new();
    let mut last = None;
    for seg in segments {
        match seg {
            Seg::Key(k) => {
                push_key(&mut s, k);
                last = None;
            }
            Seg::Index(i) => {
                let mut gone: Vec<usize> = removed
                    .iter()
                    .filter(|(p, _)| *p == s)
                    .map(|(_, i)| *i)
                    .collect();
                gone.sort_unstable();
                let mut orig = *i;
                for g in gone {
                    if g <= orig {
                        orig += 1;
                    }
                }
                last = Some((s.clone(), orig));
                s.push_str(&format!("[{orig}]"));
            }
        }
    }
    (s, last)
}

fn remove(root: &mut Value, segments: &[Seg]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = root;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), Value::Table(t)) => t.get_mut(k),
            (Seg::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Seg::Key(k), Value::Table(t)) => t.remove(k).is_some(),
        (Seg::Index(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("9000".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolates_vars_defaults_and_escapes() {
        assert_eq!(interpolate("a:${PORT}", &env).unwrap(), "a:9000");
        assert_eq!(interpolate("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(interpolate("${EMPTY:-x}", &env).unwrap(), "");
        assert_eq!(interpolate("$${PORT}", &env).unwrap(), "${PORT}");
        assert_eq!(interpolate("cost $5", &env).unwrap(), "cost $5");
        assert!(interpolate("${NOPE}", &env)
            .unwrap_err()
            .contains("NOPE is not set"));
        assert!(interpolate("${PORT", &env)
            .unwrap_err()
            .contains("unclosed"));
        assert!(interpolate("${A-B}", &env)
            .unwrap_err()
            .contains("invalid variable"));
    }
}
