//! Property tests of the editor: for generated manifests with comments, blank lines, quotes,
//! flow and block styles, block scalars, other documents, CRLF and a BOM, an image edit changes
//! only the bytes of the target scalar and the file reads back the same except for that value.

// Test helpers outside #[test] functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use flux_core::manifest::edit::set_container_image;
use flux_core::manifest::{ManifestOptions, read_manifests};
use flux_core::{ImageRef, ResourceId, SourceFile};
use proptest::prelude::*;
use serde_json::Value;

#[derive(Debug, Clone, Copy)]
enum Quote {
    Plain,
    Single,
    Double,
}

#[derive(Debug, Clone)]
struct ContainerSpec {
    flow: bool,
    quote: Quote,
    tag: String,
    comment: Option<String>,
    with_args: bool,
}

#[derive(Debug, Clone)]
struct Doc {
    indent: usize,
    crlf: bool,
    bom: bool,
    leading_comment: Option<String>,
    doc_before: bool,
    doc_after: bool,
    flow_labels: bool,
    blank_lines: bool,
    init: Vec<ContainerSpec>,
    containers: Vec<ContainerSpec>,
}

fn comment() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 :,{}\\[\\]'\"-]{0,20}"
}

fn tag() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z0-9][a-z0-9._-]{0,12}", "[0-9]{1,2}\\.[0-9]{1,2}", Just("true".to_owned()), Just("1e3".to_owned())]
}

fn container() -> impl Strategy<Value = ContainerSpec> {
    (any::<bool>(), 0..3u8, tag(), proptest::option::of(comment()), any::<bool>()).prop_map(
        |(flow, q, tag, comment, with_args)| ContainerSpec {
            flow,
            quote: [Quote::Plain, Quote::Single, Quote::Double][q as usize],
            tag,
            comment,
            with_args,
        },
    )
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop_oneof![Just(2usize), Just(4usize)],
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(comment()),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        proptest::collection::vec(container(), 0..2),
        proptest::collection::vec(container(), 1..4),
    )
        .prop_map(
            |(
                indent,
                crlf,
                bom,
                leading_comment,
                (doc_before, doc_after, flow_labels, blank_lines),
                init,
                containers,
            )| {
                Doc {
                    indent,
                    crlf,
                    bom,
                    leading_comment,
                    doc_before,
                    doc_after,
                    flow_labels,
                    blank_lines,
                    init,
                    containers,
                }
            },
        )
}

/// The image of container `n` (unique per container, so its text can be found).
fn image_of(n: usize, tag: &str) -> String {
    format!("registry.example.com:5000/team/app-{n}x:{tag}")
}

fn scalar(quote: Quote, value: &str) -> String {
    match quote {
        // Plain only when it reads back as the same string; otherwise the generator quotes it.
        Quote::Plain
            if serde_saphyr::from_str::<Value>(&format!("k: {value}")).ok()
                == Some(serde_json::json!({"k": value})) =>
        {
            value.to_owned()
        }
        Quote::Plain | Quote::Double => format!("\"{value}\""),
        Quote::Single => format!("'{value}'"),
    }
}

fn render(doc: &Doc) -> String {
    let i = " ".repeat(doc.indent);
    let mut s = String::new();
    if doc.bom {
        s.push('\u{feff}');
    }
    if let Some(c) = &doc.leading_comment {
        s.push_str(&format!("# {c}\n"));
    }
    if doc.doc_before {
        s.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n{i}name: settings\ndata:\n{i}script: |\n{i}{i}echo \"image: nginx\"\n\n{i}{i}exit 0\n"));
    }
    s.push_str("---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n");
    s.push_str(&format!("{i}name: web # the app\n{i}namespace: prod\n"));
    if doc.flow_labels {
        s.push_str(&format!("{i}labels: {{app: web, tier: \"front\"}}\n"));
    } else {
        s.push_str(&format!("{i}labels:\n{i}{i}app: web\n{i}{i}tier: 'front'\n"));
    }
    if doc.blank_lines {
        s.push('\n');
    }
    s.push_str(&format!("spec:\n{i}template:\n{i}{i}spec:\n"));
    let mut n = 0;
    for (field, list) in [("initContainers", &doc.init), ("containers", &doc.containers)] {
        if list.is_empty() {
            continue;
        }
        s.push_str(&format!("{i}{i}{i}{field}:\n"));
        for c in list {
            let image = scalar(c.quote, &image_of(n, &c.tag));
            let trailing = c.comment.as_ref().map(|t| format!(" # {t}")).unwrap_or_default();
            let p = format!("{i}{i}{i}{i}");
            if c.flow {
                let args = if c.with_args { ", args: [--port, \"8080\"]" } else { "" };
                s.push_str(&format!("{p}- {{name: c{n}, image: {image}{args}}}{trailing}\n"));
            } else {
                s.push_str(&format!("{p}- name: c{n}\n{p}  image: {image}{trailing}\n"));
                if c.with_args {
                    s.push_str(&format!("{p}  args:\n{p}  - >-\n{p}    folded text\n{p}    over lines\n"));
                }
                if doc.blank_lines {
                    s.push('\n');
                }
            }
            n += 1;
        }
    }
    if doc.doc_after {
        s.push_str(
            "---\n# trailing document\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: prod}\n...\n",
        );
    }
    if doc.crlf { s.replace('\n', "\r\n") } else { s }
}

fn objects(text: &str) -> Vec<Value> {
    let files = [SourceFile { path: "f.yaml".into(), content: text.as_bytes().to_vec() }];
    read_manifests(&files, &ManifestOptions::default()).unwrap().iter().map(|m| m.object.to_value()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn an_image_edit_changes_only_its_scalar(doc in doc(), pick in any::<prop::sample::Index>(), new_tag in tag()) {
        let text = render(&doc);
        let all: Vec<(&str, &ContainerSpec)> = doc.init.iter().map(|c| ("initContainers", c))
            .chain(doc.containers.iter().map(|c| ("containers", c))).collect();
        let n = pick.index(all.len());
        let (field, spec) = all[n];
        let index = if field == "initContainers" { n } else { n - doc.init.len() };
        let old_scalar = scalar(spec.quote, &image_of(n, &spec.tag));
        let start = text.find(&format!("image: {old_scalar}")).unwrap() + "image: ".len();
        let end = start + old_scalar.len();

        let new_image: ImageRef = image_of(n, &new_tag).parse().unwrap();
        let workload: ResourceId = "prod:deployment/web".parse().unwrap();
        let out = set_container_image("f.yaml", &text, &workload, &format!("c{n}"), &new_image).unwrap();

        // Every byte outside the old scalar's span is unchanged.
        prop_assert!(out.starts_with(&text[..start]));
        prop_assert!(out.ends_with(&text[end..]));
        let new_scalar = &out[start..out.len() - (text.len() - end)];
        // The quote style is kept whenever it can hold the new value.
        match spec.quote {
            Quote::Single if old_scalar.starts_with('\'') => prop_assert!(new_scalar.starts_with('\'')),
            Quote::Double | Quote::Single => prop_assert!(new_scalar.starts_with('"') || new_scalar.starts_with('\'')),
            Quote::Plain => {}
        }
        // The file reads back as before except for that one image.
        let mut expected = objects(&text);
        let deployment = expected.iter_mut().find(|o| o["kind"] == "Deployment").unwrap();
        deployment["spec"]["template"]["spec"][field][index]["image"] = Value::String(new_image.to_string());
        prop_assert_eq!(objects(&out), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A HelmRelease tag on its own can read as a number or boolean: the editor quotes it then,
    /// and keeps the old style otherwise.
    #[test]
    fn a_helm_tag_edit_changes_only_its_scalar(
        q in 0..3u8, old_tag in tag(), new_tag in tag(), note in proptest::option::of(comment()), crlf in any::<bool>(),
    ) {
        let quote = [Quote::Plain, Quote::Single, Quote::Double][q as usize];
        let old_scalar = scalar(quote, &old_tag);
        let trailing = note.map(|t| format!("   # {t}")).unwrap_or_default();
        let text = format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: app\n  namespace: prod\nspec:\n  values:\n    # the image\n    app:\n      image: example/app\n      tag: {old_scalar}{trailing}\n\n    replicas: 2\n"
        );
        let text = if crlf { text.replace('\n', "\r\n") } else { text };
        let start = text.find("tag: ").unwrap() + "tag: ".len();
        let end = start + old_scalar.len();
        let new_image: ImageRef = format!("example/app:{new_tag}").parse().unwrap();
        let workload: ResourceId = "prod:helmrelease/app".parse().unwrap();
        let out = set_container_image("h.yaml", &text, &workload, "app", &new_image).unwrap();
        prop_assert!(out.starts_with(&text[..start]));
        prop_assert!(out.ends_with(&text[end..]));
        let new_scalar = &out[start..out.len() - (text.len() - end)];
        if old_tag != new_tag {
            match quote {
                Quote::Single => prop_assert_eq!(new_scalar, format!("'{new_tag}'")),
                Quote::Double => prop_assert_eq!(new_scalar, format!("\"{new_tag}\"")),
                Quote::Plain if old_scalar.starts_with('"') => prop_assert_eq!(new_scalar, format!("\"{new_tag}\"")),
                Quote::Plain => prop_assert_eq!(new_scalar, scalar(Quote::Plain, &new_tag)),
            }
        }
        let mut expected = objects(&text);
        expected[0]["spec"]["values"]["app"]["tag"] = Value::String(new_tag.clone());
        prop_assert_eq!(objects(&out), expected);
    }
}

#[derive(Debug, Clone)]
struct MetaDoc {
    indent: usize,
    crlf: bool,
    flow_metadata: bool,
    /// `None`: no annotations; `Some(flow, keys)`.
    annotations: Option<(bool, Vec<String>)>,
    comment: Option<String>,
}

fn meta_doc() -> impl Strategy<Value = MetaDoc> {
    (
        prop_oneof![Just(2usize), Just(3usize), Just(4usize)],
        any::<bool>(),
        any::<bool>(),
        proptest::option::of((any::<bool>(), proptest::collection::btree_set("[a-z]{1,5}(\\.io/[a-z]{1,5})?", 1..4))),
        proptest::option::of(comment()),
    )
        .prop_map(|(indent, crlf, flow_metadata, annotations, comment)| MetaDoc {
            indent,
            crlf,
            flow_metadata,
            annotations: annotations.map(|(flow, keys)| (flow, keys.into_iter().collect())),
            comment,
        })
}

fn render_meta(doc: &MetaDoc) -> String {
    let i = " ".repeat(doc.indent);
    let trailing = doc.comment.as_ref().map(|c| format!(" # {c}")).unwrap_or_default();
    let annotations = |flow: bool, keys: &[String], pad: &str| -> String {
        if flow {
            let entries: Vec<String> = keys.iter().map(|k| format!("{k}: '{k}-value'")).collect();
            format!("{{{}}}", entries.join(", "))
        } else {
            keys.iter().map(|k| format!("\n{pad}{k}: \"{k}-value\"")).collect()
        }
    };
    let mut s = String::from("apiVersion: apps/v1\nkind: Deployment\n");
    if doc.flow_metadata {
        let a = match &doc.annotations {
            Some((_, keys)) => format!(", annotations: {}", annotations(true, keys, "")),
            None => String::new(),
        };
        s.push_str(&format!("metadata: {{name: web, namespace: prod{a}}}{trailing}\n"));
    } else {
        s.push_str(&format!("metadata:{trailing}\n{i}name: web\n{i}namespace: prod # where\n"));
        if let Some((flow, keys)) = &doc.annotations {
            let sep = if *flow { " " } else { "" };
            s.push_str(&format!("{i}annotations:{sep}{}\n", annotations(*flow, keys, &format!("{i}{i}"))));
        }
    }
    s.push_str(&format!("spec:\n{i}replicas: 1\n"));
    if doc.crlf { s.replace('\n', "\r\n") } else { s }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Setting or removing an annotation changes one contiguous stretch of bytes, and the file
    /// reads back with exactly that annotation changed.
    #[test]
    fn an_annotation_edit_changes_only_that_annotation(
        doc in meta_doc(), key in "[a-z]{1,5}(\\.io/[a-z.]{1,8})?", value in proptest::option::of("[ -~]{0,12}"),
        remove_existing in any::<prop::sample::Index>(),
    ) {
        let text = render_meta(&doc);
        let workload: ResourceId = "prod:deployment/web".parse().unwrap();
        // Sometimes remove or change a key that is there.
        let existing = doc.annotations.as_ref().map(|(_, keys)| keys.clone()).unwrap_or_default();
        let key = if !existing.is_empty() && value.is_none() { existing[remove_existing.index(existing.len())].clone() } else { key };
        let out = flux_core::manifest::edit::set_annotation("f.yaml", &text, &workload, &key, value.as_deref()).unwrap();

        let mut expected = objects(&text);
        let metadata = expected[0]["metadata"].as_object_mut().unwrap();
        match &value {
            Some(v) => {
                let annotations = metadata.entry("annotations").or_insert_with(|| serde_json::json!({}));
                annotations[key.as_str()] = Value::String(v.clone());
            }
            None => {
                if let Some(a) = metadata.get_mut("annotations").and_then(Value::as_object_mut) {
                    a.remove(&key);
                    let empty_block = a.is_empty() && !doc.flow_metadata && !doc.annotations.as_ref().is_some_and(|(f, _)| *f);
                    if empty_block {
                        metadata.remove("annotations");
                    }
                }
            }
        }
        prop_assert_eq!(objects(&out), expected);
        // At most two lines change, in one place; every other line is kept byte for byte.
        let before: Vec<&str> = text.split_inclusive('\n').collect();
        let after: Vec<&str> = out.split_inclusive('\n').collect();
        let same_start = before.iter().zip(&after).take_while(|(a, b)| a == b).count();
        let max_end = before.len().min(after.len()) - same_start;
        let same_end = before.iter().rev().zip(after.iter().rev()).take(max_end).take_while(|(a, b)| a == b).count();
        prop_assert!(before.len() - same_start - same_end <= 2, "{}", out);
        prop_assert!(after.len() - same_start - same_end <= 2, "{}", out);
        // Line ends stay as the file had them.
        if doc.crlf {
            prop_assert_eq!(out.matches('\n').count(), out.matches("\r\n").count());
        } else {
            prop_assert!(!out.contains('\r'));
        }
        // New block annotations sit at the file's indentation.
        if value.is_some() && !doc.flow_metadata && doc.annotations.is_none() {
            let i = " ".repeat(doc.indent);
            let eol = if doc.crlf { "\r\n" } else { "\n" };
            let expected_annotations = format!("{eol}{i}annotations:{eol}{i}{i}");
            prop_assert!(out.contains(&expected_annotations), "{}", out);
        }
    }
}
