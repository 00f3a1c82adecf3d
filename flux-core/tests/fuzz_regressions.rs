//! Inputs the fuzz targets (fuzz/, `scripts/fuzz`) found to break an invariant, kept as tests.

use flux_core::manifest::edit::set_container_image;
use flux_core::manifest::kustomize::{add_patch, parse_kustomization, set_image};
use flux_core::{ImageRef, ImageRepo, ResourceId};

/// fuzz target image_ref: a 250-character name without registry parsed, but its repository
/// (`docker.io/library/` + name) was over Docker's 255 characters and did not parse back, so
/// an `ImageRepo` saved (e.g. in the registry cache) could not be read again.
#[test]
fn every_repository_of_a_valid_reference_parses_back() {
    let long = "a".repeat(250);
    let rejected = long.parse::<ImageRef>().expect_err("docker.io/library/ + 250 characters is over 255");
    assert!(rejected.to_string().contains("longer than 255"), "{rejected}");
    for text in [long[..237].to_owned(), format!("team/{}", &long[..240]), format!("quay.io/{}", &long[..247])] {
        let image: ImageRef = text.parse().expect("within 255 characters once normalised");
        let repo = image.repository();
        assert!(repo.to_string().len() <= 255, "{repo}");
        assert_eq!(repo.to_string().parse::<ImageRepo>().expect("parses back"), repo);
    }
}

/// fuzz target manifest_edit: with two containers of the same name (which the API server
/// refuses), setting the second's image silently edited the first; now the edit is refused.
#[test]
fn an_image_edit_refuses_a_container_name_used_twice() {
    let text = "apiVersion: apps/v1\r\nkind: Deployment\r\nmetadata:\r\n  name: windows-app\r\nspec:\r\n  template:\r\n    spec:\r\n      containers:\r\n      - name: app\r\n        image: mcr.microsoft.com/d  # the only container\r\n      - name: app\r\n        image: mcr.microsoft.com/dotnet/aspnet:8.0 \r\n";
    let id: ResourceId = "default:deployment/windows-app".parse().expect("an id");
    let image: ImageRef = "mcr.microsoft.com/dotnet/aspnet:9.0".parse().expect("an image");
    let error = set_container_image("apps/app.yaml", text, &id, "app", &image).expect_err("ambiguous");
    let message = error.to_string();
    assert!(message.contains("apps/app.yaml") && message.contains("more than one container named app"), "{message}");
}

/// fuzz target kustomize_edit: a kustomization holding only `~` (a null document, read as an
/// empty kustomization) got `images:` appended after it, which is not YAML; now the edit is
/// refused, and a file of comments still gets its list.
#[test]
fn a_kustomization_of_one_null_document_is_not_appended_to() {
    let image: ImageRef = "registry.example:5000/fuzz/app:1.2.3".parse().expect("an image");
    for text in ["~", "null\n", "--- ~\n"] {
        let error = set_image("kustomization.yaml", text, "fuzz/new", &image).expect_err("not appendable");
        assert!(error.to_string().contains("kustomization.yaml"), "{error}");
        let error = add_patch("kustomization.yaml", text, "p.yaml", "Deployment", "web").expect_err("not appendable");
        assert!(error.to_string().contains("empty document"), "{error}");
    }
    let edited = set_image("kustomization.yaml", "# nothing yet\n", "fuzz/new", &image).expect("appended");
    let k = parse_kustomization("kustomization.yaml", &edited).expect("parses");
    assert_eq!(k.images[0].new_tag.as_deref(), Some("1.2.3"));
    assert!(edited.starts_with("# nothing yet\nimages:\n"), "{edited}");
}

/// fuzz target kustomize_edit (found in CI, 2026-12-01): `name: n` is false in YAML 1.1 but the
/// image `n` to kustomize; `set_image` looked entries up by the YAML 1.1 reading, missed it and
/// appended a second `n` entry.
#[test]
fn an_images_entry_whose_name_yaml_1_1_reads_as_a_boolean_is_edited_in_place() {
    for name in ["n", "y", "no", "on", "off"] {
        let text = format!("resources:\n  - app.yaml\nimages:\n  - name:  {name}");
        let to: ImageRef = format!("{name}:9.9.9").parse().expect("an image");
        let edited = set_image("kustomization.yaml", &text, name, &to).expect("edited");
        let images = parse_kustomization("kustomization.yaml", &edited).expect("parses").images;
        assert_eq!(images.len(), 1, "{edited}");
        assert_eq!((images[0].name.as_str(), images[0].new_tag.as_deref()), (name, Some("9.9.9")), "{edited}");
    }
}
