//! Tag filters compiled for matching, and choosing the latest tag.
//!
//! | filter | matches | latest |
//! |---|---|---|
//! | `glob:<pattern>` (also no prefix) | `*`, `?`, `[…]` over the whole tag | newest `created` |
//! | `semver:<range>` | tags that are versions (`v` prefix and missing minor/patch allowed) in range | highest version |
//! | `regex:<re>` / `regexp:<re>` | tags the expression finds a match in (anchor it yourself) | newest `created` |
//! | `alphabetical:asc` / `desc` | every tag | last in that order |
//! | `numerical:asc` / `desc` | tags that are numbers | last in that order |
//!
//! Semver ranges are written as in Flux v1 (Masterminds): `~1.0`, `^2`, `1.2.x`, `>=1.2 <2`
//! (space or comma means "and"), `<1 || >=3` ("or"); a bare version means exactly it.
//! Pre-releases match only ranges that name a pre-release of the same version.
//!
//! The tag `latest` matches only the filter that is exactly `glob:latest` (or `latest`).
//! Choosing by time never picks a tag without a `created` time. Ties are broken as Flux v1
//! broke them (`NewerByCreated`, `NewerBySemver` in fluxcd/flux `pkg/image/image.go`), so the
//! choice does not depend on the order of the candidates: at the same `created` time the
//! *smaller* tag in byte order is the newer (v1 sorted equal times by image reference,
//! ascending, and took the first); between equal versions (`1.0.0` and `v1.0.0`, `1.10` and
//! `1.10.0`) the greater tag wins. Alphabetical and numerical ties go to the greater tag.

use std::cmp::Ordering;

use globset::{Glob, GlobMatcher};
use regex::Regex;
use semver::{Version, VersionReq};

use crate::error::{Error, Location, Result};
use crate::policy::TagFilter;

/// The tag automation never picks unless asked for by name.
pub const LATEST: &str = "latest";

/// A tag that could be chosen, with the `created` time of its image if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCandidate {
    /// The tag.
    pub tag: String,
    /// When its image was built, if the image says.
    pub created: Option<jiff::Timestamp>,
}

impl TagCandidate {
    /// A candidate.
    pub fn new(tag: impl Into<String>, created: Option<jiff::Timestamp>) -> Self {
        TagCandidate { tag: tag.into(), created }
    }
}

/// Ascending or descending, for the `alphabetical` and `numerical` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// The last in ascending order (the greatest) is the latest.
    Asc,
    /// The last in descending order (the least) is the latest.
    Desc,
}

/// A [`TagFilter`] checked and ready to match tags.
#[derive(Debug, Clone)]
pub struct CompiledFilter {
    text: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Glob(GlobMatcher),
    Semver(Vec<VersionReq>),
    Regex(Regex),
    Alphabetical(SortOrder),
    Numerical(SortOrder),
}

impl TagFilter {
    /// Compiles the pattern; see [`CompiledFilter`]. [`TagFilter::new`] compiles once to check,
    /// so this fails only for a filter built another way.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the filter when the pattern is not a valid glob, semver
    /// range, regular expression or `asc`/`desc`. Callers that know the workload and annotation
    /// name them (as [`workloads`](super::workloads) does).
    pub fn compile(&self) -> Result<CompiledFilter> {
        let (kind, pattern) = self.kind_and_pattern();
        let bad = |why: String| Error::invalid(Location::file(self.as_str()), format!("invalid tag filter: {why}"));
        let kind = match kind {
            "glob" => Kind::Glob(Glob::new(pattern).map_err(|e| bad(format!("bad glob: {e}")))?.compile_matcher()),
            "semver" => Kind::Semver(parse_range(pattern).map_err(|e| bad(format!("bad semver range: {e}")))?),
            "regex" | "regexp" => {
                Kind::Regex(Regex::new(pattern).map_err(|e| bad(format!("bad regular expression: {e}")))?)
            }
            "alphabetical" => Kind::Alphabetical(parse_order(pattern).map_err(bad)?),
            "numerical" => Kind::Numerical(parse_order(pattern).map_err(bad)?),
            other => return Err(bad(format!("unknown kind {other:?}"))),
        };
        Ok(CompiledFilter { text: self.as_str().to_owned(), kind })
    }
}

impl CompiledFilter {
    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the filter orders tags by version rather than by time.
    pub fn is_semver(&self) -> bool {
        matches!(self.kind, Kind::Semver(_))
    }

    /// Whether [`latest`](Self::latest) orders by `created` time (glob and regex filters), so
    /// that candidates need their images' times.
    pub fn orders_by_time(&self) -> bool {
        matches!(self.kind, Kind::Glob(_) | Kind::Regex(_))
    }

    /// Whether `tag` passes the filter.
    pub fn matches(&self, tag: &str) -> bool {
        if tag == LATEST && !self.is_exactly_latest() {
            return false;
        }
        match &self.kind {
            Kind::Glob(glob) => glob.is_match(tag),
            Kind::Semver(ranges) => parse_version(tag).is_some_and(|v| ranges.iter().any(|r| r.matches(&v))),
            Kind::Regex(re) => re.is_match(tag),
            Kind::Alphabetical(_) => true,
            Kind::Numerical(_) => parse_number(tag).is_some(),
        }
    }

    /// The latest of the candidates that match (see the module docs for the order and the
    /// tie-break), or `None` when none can be chosen.
    pub fn latest<'a>(&self, candidates: &'a [TagCandidate]) -> Option<&'a TagCandidate> {
        let matching = candidates.iter().filter(|c| self.matches(&c.tag));
        match &self.kind {
            Kind::Glob(_) | Kind::Regex(_) => matching
                .filter(|c| c.created.is_some())
                .max_by(|a, b| a.created.cmp(&b.created).then_with(|| b.tag.cmp(&a.tag))),
            Kind::Semver(_) => matching
                .filter_map(|c| Some((parse_version(&c.tag)?, c)))
                .max_by(|(va, a), (vb, b)| va.cmp(vb).then_with(|| a.tag.cmp(&b.tag)))
                .map(|(_, c)| c),
            Kind::Alphabetical(order) => matching.max_by(|a, b| ordered(*order, a.tag.cmp(&b.tag))),
            Kind::Numerical(order) => matching
                .filter_map(|c| Some((parse_number(&c.tag)?, c)))
                .max_by(|(na, a), (nb, b)| ordered(*order, na.total_cmp(nb)).then_with(|| a.tag.cmp(&b.tag)))
                .map(|(_, c)| c),
        }
    }

    /// Whether the filter asks for `latest` by name.
    fn is_exactly_latest(&self) -> bool {
        self.text == LATEST || self.text == "glob:latest"
    }
}

fn ordered(order: SortOrder, ordering: Ordering) -> Ordering {
    match order {
        SortOrder::Asc => ordering,
        SortOrder::Desc => ordering.reverse(),
    }
}

fn parse_order(pattern: &str) -> std::result::Result<SortOrder, String> {
    match pattern.trim() {
        "asc" | "ASC" => Ok(SortOrder::Asc),
        "desc" | "DESC" => Ok(SortOrder::Desc),
        other => Err(format!("order must be asc or desc, not {other:?}")),
    }
}

fn parse_number(tag: &str) -> Option<f64> {
    tag.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A tag as a version, leniently: `v1.2.3`, `1.2`, `1`, `1.2.3-rc.1+build`.
pub fn parse_version(tag: &str) -> Option<Version> {
    let text = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    let core_end = text.find(['-', '+']).unwrap_or(text.len());
    let (core, rest) = text.split_at(core_end);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    Version::parse(&format!("{full}{rest}")).ok()
}

/// A Masterminds-style range as `||`-separated alternatives of comparators.
fn parse_range(range: &str) -> std::result::Result<Vec<VersionReq>, String> {
    if range.trim().is_empty() {
        return Err("empty range".to_owned());
    }
    range
        .split("||")
        .map(|alternative| {
            let comparators = comparators(alternative)?;
            VersionReq::parse(&comparators.join(", ")).map_err(|e| format!("{:?}: {e}", alternative.trim()))
        })
        .collect()
}

/// `>= 1.2 <2` → [`>=1.2`, `<2`]; a bare version becomes `=version`; a leading `v` is dropped.
fn comparators(alternative: &str) -> std::result::Result<Vec<String>, String> {
    const OPERATORS: [&str; 7] = [">=", "<=", ">", "<", "=", "~", "^"];
    let mut out: Vec<String> = Vec::new();
    let mut pending_operator: Option<&str> = None;
    for token in alternative.split([',', ' ', '\t']).filter(|t| !t.is_empty()) {
        if OPERATORS.contains(&token) {
            pending_operator = Some(token);
            continue;
        }
        let op_len = OPERATORS.iter().find(|op| token.starts_with(*op)).map_or(0, |op| op.len());
        let (op, version) = token.split_at(op_len);
        let op = pending_operator.take().unwrap_or(op);
        let version = version.strip_prefix(['v', 'V']).unwrap_or(version);
        let wildcard = version.contains(['*', 'x', 'X']);
        let op = if op.is_empty() && !wildcard { "=" } else { op };
        out.push(format!("{op}{version}"));
    }
    if let Some(op) = pending_operator {
        return Err(format!("{op:?} has no version after it"));
    }
    if out.is_empty() {
        return Err(format!("{:?} has no comparator", alternative.trim()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(text: &str) -> CompiledFilter {
        TagFilter::new(text).unwrap().compile().unwrap()
    }

    fn at(seconds: i64) -> Option<jiff::Timestamp> {
        Some(jiff::Timestamp::from_second(seconds).unwrap())
    }

    fn tags(list: &[&str]) -> Vec<TagCandidate> {
        list.iter().map(|t| TagCandidate::new(*t, None)).collect()
    }

    #[test]
    fn glob_is_the_default() {
        let f = filter("1.*");
        assert!(f.matches("1.2") && f.matches("1.2.3-alpine") && !f.matches("2.0"));
        let f = filter("glob:master-?????");
        assert!(f.matches("master-a1b2c") && !f.matches("master-a1b2"));
        assert!(filter("glob:[ab]*").matches("beta") && !filter("glob:[ab]*").matches("gamma"));
    }

    #[test]
    fn latest_is_only_matched_by_name() {
        assert!(!filter("glob:*").matches("latest"));
        assert!(!filter("*").matches("latest"));
        assert!(!filter("regex:.*").matches("latest"));
        assert!(!filter("alphabetical:asc").matches("latest"));
        assert!(filter("glob:latest").matches("latest"));
        assert!(filter("latest").matches("latest"));
        let candidates = vec![TagCandidate::new("latest", at(100)), TagCandidate::new("1.0", at(10))];
        assert_eq!(filter("glob:*").latest(&candidates).unwrap().tag, "1.0");
        assert_eq!(filter("glob:latest").latest(&candidates).unwrap().tag, "latest");
    }

    #[test]
    fn semver_ranges() {
        let f = filter("semver:~1.0");
        assert!(f.matches("1.0.9") && f.matches("v1.0") && !f.matches("1.1.0") && !f.matches("abc"));
        let f = filter("semver:^2");
        assert!(f.matches("2.9.1") && !f.matches("3.0.0") && !f.matches("1.9"));
        let f = filter("semver:>=1.2 <2");
        assert!(f.matches("1.2.0") && f.matches("1.9.9") && !f.matches("2.0.0") && !f.matches("1.1.9"));
        let f = filter("semver:>= 1.2, < 2");
        assert!(f.matches("1.5") && !f.matches("2.1"));
        let f = filter("semver:<1 || >=3");
        assert!(f.matches("0.5.0") && f.matches("3.1.0") && !f.matches("2.0.0"));
        let f = filter("semver:1.2.x");
        assert!(f.matches("1.2.7") && !f.matches("1.3.0"));
        let f = filter("semver:1.2.3");
        assert!(f.matches("1.2.3") && !f.matches("1.2.4"), "a bare version is exact");
        assert!(!filter("semver:~1.0").matches("1.0.1-rc.1"), "pre-releases need a pre-release range");
        assert!(filter("semver:>=1.0.1-rc.0").matches("1.0.1-rc.1"));
    }

    #[test]
    fn semver_latest_is_the_highest_version() {
        let candidates = vec![
            TagCandidate::new("1.0.2", at(300)),
            TagCandidate::new("1.0.10", at(100)),
            TagCandidate::new("1.1.0", at(400)),
            TagCandidate::new("1.0.11-rc.1", at(500)),
        ];
        assert_eq!(filter("semver:~1.0").latest(&candidates).unwrap().tag, "1.0.10");
        let tie = tags(&["1.0.0", "v1.0.0"]);
        let reversed: Vec<_> = tie.iter().rev().cloned().collect();
        assert_eq!(filter("semver:^1").latest(&tie).unwrap().tag, "v1.0.0");
        assert_eq!(filter("semver:^1").latest(&reversed).unwrap().tag, "v1.0.0");
    }

    #[test]
    fn regex_and_regexp() {
        for text in [r"regex:^v\d+$", r"regexp:^v\d+$"] {
            let f = filter(text);
            assert!(f.matches("v12") && !f.matches("v12-rc") && !f.matches("12"));
        }
    }

    #[test]
    fn by_time_newest_wins_and_no_time_is_never_chosen() {
        let candidates = vec![
            TagCandidate::new("a", at(100)),
            TagCandidate::new("b", at(300)),
            TagCandidate::new("c", None),
            TagCandidate::new("d", at(300)),
        ];
        assert_eq!(filter("glob:*").latest(&candidates).unwrap().tag, "b", "ties go to the smaller tag, as in Flux v1");
        let mut reversed = candidates.clone();
        reversed.reverse();
        assert_eq!(filter("glob:*").latest(&reversed).unwrap().tag, "b");
        assert!(filter("glob:*").latest(&tags(&["x", "y"])).is_none());
        assert!(filter("regex:^c$").latest(&candidates).is_none());
    }

    #[test]
    fn equal_times_and_equal_versions_break_ties_as_flux_v1() {
        // NewerByCreated: equal times sort by image reference ascending; the first is chosen.
        let same_time = vec![
            TagCandidate::new("main-b2", at(500)),
            TagCandidate::new("main-a1", at(500)),
            TagCandidate::new("main-10", at(500)),
            TagCandidate::new("main-9", at(100)),
        ];
        assert_eq!(filter("glob:main-*").latest(&same_time).unwrap().tag, "main-10");
        assert_eq!(filter("regex:^main-[a-z]").latest(&same_time).unwrap().tag, "main-a1");
        // NewerBySemver: equal versions go to the greater reference.
        let equal_versions = tags(&["1.10", "1.10.0", "v1.10.0", "1.9.9"]);
        assert_eq!(filter("semver:~1").latest(&equal_versions).unwrap().tag, "v1.10.0");
        assert_eq!(filter("semver:~1").latest(&tags(&["1.10", "1.10.0"])).unwrap().tag, "1.10.0");
    }

    #[test]
    fn which_filters_order_by_time() {
        let by_time: Vec<bool> = ["1.*", "regexp:^v", "semver:^1", "alphabetical:asc", "numerical:desc"]
            .iter()
            .map(|f| filter(f).orders_by_time())
            .collect();
        assert_eq!(by_time, [true, true, false, false, false]);
    }

    #[test]
    fn alphabetical_and_numerical() {
        let list = tags(&["RELEASE.2023-01-01", "RELEASE.2024-06-30", "RELEASE.2022-12-31"]);
        assert_eq!(filter("alphabetical:asc").latest(&list).unwrap().tag, "RELEASE.2024-06-30");
        assert_eq!(filter("alphabetical:desc").latest(&list).unwrap().tag, "RELEASE.2022-12-31");
        let list = tags(&["9", "10", "100", "abc", "2.5"]);
        assert_eq!(filter("numerical:asc").latest(&list).unwrap().tag, "100");
        assert_eq!(filter("numerical:desc").latest(&list).unwrap().tag, "2.5");
        assert!(!filter("numerical:asc").matches("abc"));
    }

    #[test]
    fn invalid_filters_are_errors() {
        for bad in [
            "semver:not-a-range",
            "semver:>=",
            "semver:",
            "regex:(",
            "regexp:[z-a]",
            "glob:[",
            "numerical:up",
            "alphabetical:",
        ] {
            let err = TagFilter::new(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{bad}: invalid tag filter")), "{err}");
        }
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(parse_version("v1").unwrap().to_string(), "1.0.0");
        assert_eq!(parse_version("1.2-rc.1").unwrap().to_string(), "1.2.0-rc.1");
        assert_eq!(parse_version("1.2.3+build.5").unwrap().to_string(), "1.2.3+build.5");
        for bad in ["", "v", "1.2.3.4", "1..2", "latest", "1.a", "01.2"] {
            assert!(parse_version(bad).is_none(), "{bad}");
        }
    }
}
