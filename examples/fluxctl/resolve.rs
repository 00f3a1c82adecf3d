//! What fluxctl works out before it talks to fluxd, as Flux v1's fluxctl did: workload IDs with
//! an optional namespace, the kube context's namespace, the `--user` default from git config,
//! Go durations (`--timeout 1m30s`) and `key=value` label lists.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The characters of a namespace or a kind (Flux v1's `IDRegexp`).
const ID_CHARS: fn(char) -> bool = |c| c.is_ascii_alphanumeric() || c == '_' || c == '-';
/// A name may also hold `.` and `:` (Flux v1's `IDRegexp`).
const NAME_CHARS: fn(char) -> bool = |c| ID_CHARS(c) || c == '.' || c == ':';

/// `text` as a workload ID `namespace:kind/name`, as Flux v1's `ParseIDOptionalNamespace`: a
/// full ID (`<cluster>` for cluster-scoped objects) stands as written, `kind/name` takes
/// `namespace`. The kind is lower-cased.
pub(crate) fn workload_id(namespace: &str, text: &str) -> Result<String, String> {
    let invalid = || format!("invalid workload ID {text:?}: expected <namespace>:<kind>/<name> or <kind>/<name>");
    let (ns, rest) = match text.split_once(':') {
        // A colon before the slash separates the namespace; after it, it is part of the name.
        Some((ns, rest)) if !ns.contains('/') => (ns, rest),
        _ => (namespace, text),
    };
    let (kind, name) = rest.split_once('/').ok_or_else(invalid)?;
    let valid_ns = ns == "<cluster>" || (!ns.is_empty() && ns.chars().all(ID_CHARS));
    let valid =
        valid_ns && !kind.is_empty() && kind.chars().all(ID_CHARS) && !name.is_empty() && name.chars().all(NAME_CHARS);
    if !valid {
        return Err(invalid());
    }
    Ok(format!("{ns}:{}/{name}", kind.to_ascii_lowercase()))
}

/// The namespace of kubeconfig context `context` (the current one when `None`), as Flux v1 read
/// it (`$KUBECONFIG`, else `~/.kube/config`); `None` when there is no kubeconfig, no such
/// context or it names no namespace.
pub(crate) fn context_namespace(context: Option<&str>) -> Option<String> {
    let config = kube::config::Kubeconfig::read().ok()?;
    let name = context.map(str::to_owned).or(config.current_context.clone())?;
    let found = config.contexts.iter().find(|c| c.name == name)?;
    found.context.as_ref()?.namespace.clone().filter(|ns| !ns.is_empty())
}

/// `-n NS` if given, else the kube context's namespace, else `default` (Flux v1's
/// `getKubeConfigContextNamespaceOrDefault`).
pub(crate) fn namespace_or_context(namespace: Option<&str>, context: Option<&str>) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => ns.to_owned(),
        _ => context_namespace(context).unwrap_or_else(|| "default".to_owned()),
    }
}

/// The author Flux v1's fluxctl reported by default: `user.name <user.email>` from git config,
/// or whichever of the two is set, or `None`.
pub(crate) fn git_author() -> Option<String> {
    author_from(git_config("user.name"), git_config("user.email"))
}

/// `name <email>`, or the one that is set.
pub(crate) fn author_from(name: Option<String>, email: Option<String>) -> Option<String> {
    match (name, email) {
        (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
        (name, email) => email.or(name),
    }
}

fn git_config(key: &str) -> Option<String> {
    let out = Command::new("git")
        .args(["config", "--get", "--null", key])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let value = String::from_utf8(out.stdout).ok()?;
    let value = value.trim_matches('\0');
    (out.status.success() && !value.is_empty()).then(|| value.to_owned())
}

/// A Go duration (`60s`, `1m0s`, `1.5h`, `300ms`), as Flux v1's `--timeout` and `FLUX_TIMEOUT`
/// took it.
pub(crate) fn go_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (e.g. 60s, 1m30s, 2h)");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| invalid())?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * seconds;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// `k=v,k2=v2` (Flux v1's `--k8s-fwd-labels`, a pflag string-to-string), as a label map.
pub(crate) fn labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let text = text.trim_start_matches('[').trim_end_matches(']');
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').ok_or_else(|| format!("invalid label {pair:?}: expected key=value"))?;
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_ids_take_the_namespace_when_they_have_none() {
        assert_eq!(workload_id("demo", "deployment/app").as_deref(), Ok("demo:deployment/app"));
        assert_eq!(workload_id("demo", "Deployment/app").as_deref(), Ok("demo:deployment/app"));
        assert_eq!(workload_id("demo", "other:deployment/app").as_deref(), Ok("other:deployment/app"));
        assert_eq!(workload_id("x", "<cluster>:namespace/demo").as_deref(), Ok("<cluster>:namespace/demo"));
        // A colon after the slash belongs to the name, as in Flux v1.
        assert_eq!(workload_id("demo", "helmrelease/a:b").as_deref(), Ok("demo:helmrelease/a:b"));
        assert_eq!(workload_id("demo", "ns:helmrelease/a.b:c").as_deref(), Ok("ns:helmrelease/a.b:c"));
        for bad in ["app", "deployment/", "/app", "ns:app", "a b/c", "ns:kind/na me", ""] {
            assert!(workload_id("demo", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_author_is_name_and_email_or_either() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(author_from(s("Jane"), s("jane@example.com")).as_deref(), Some("Jane <jane@example.com>"));
        assert_eq!(author_from(None, s("jane@example.com")).as_deref(), Some("jane@example.com"));
        assert_eq!(author_from(s("Jane"), None).as_deref(), Some("Jane"));
        assert_eq!(author_from(None, None), None);
    }

    #[test]
    fn go_durations_parse_as_go_does() {
        assert_eq!(go_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(go_duration("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(go_duration("1h2m3s"), Ok(Duration::from_secs(3723)));
        assert_eq!(go_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(go_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "60", "1x", "s", "-1s", "1m 2s"] {
            assert!(go_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn label_lists_are_key_value_pairs() {
        let got = labels("app=flux,tier=ops").expect("labels");
        assert_eq!(got.get("app").map(String::as_str), Some("flux"));
        assert_eq!(got.get("tier").map(String::as_str), Some("ops"));
        // pflag prints its default as [app=flux]; that form reads back too.
        assert_eq!(labels("[app=flux]").expect("labels").len(), 1);
        assert!(labels("app").is_err());
    }
}
