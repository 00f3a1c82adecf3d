//! The workloads among the manifests: their containers, images and policies, and what is wrong
//! with each of them.

use std::fmt;

use super::errors::ManifestErrors;
use super::helm::{HelmImagePaths, helm_images, is_helm_release};
use super::policies::policies_from_annotations;
use super::reader::Manifest;
use crate::error::Location;
use crate::image::ImageRef;
use crate::policy::Policies;
use crate::resource::ResourceId;
use crate::workload::{pod_container_entries, pod_spec_path};

/// One workload found in the manifests.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadManifest {
    /// Its id.
    pub id: ResourceId,
    /// The file it is defined in.
    pub file: String,
    /// Its document in the file (see [`Manifest::document`]).
    pub document: usize,
    /// The file and line it starts at.
    pub location: Location,
    /// Its containers: for pod workloads init containers first, in spec order; for a
    /// HelmRelease, its images by container name.
    pub containers: Vec<ContainerManifest>,
    /// Its policies, from its annotations (the defaults when they cannot be read: see `errors`).
    pub policies: Policies,
    /// What cannot be read in it: a container whose image is not a valid reference (that
    /// container is not in `containers`), a bad policy annotation, a HelmRelease mapping that
    /// points nowhere. A workload with errors is listed, but never edited until it is fixed.
    pub errors: Vec<WorkloadError>,
}

impl WorkloadManifest {
    /// A container by name.
    pub fn container(&self, name: &str) -> Option<&ContainerManifest> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Whether everything in it could be read.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// Its errors as one line, `; `-separated, each `file:line: workload: message` (empty when
    /// it has none).
    pub fn error_text(&self) -> String {
        self.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }

    /// The messages of its errors as one line, `; `-separated, without the place and the
    /// workload (for a message that already names them).
    pub fn error_messages(&self) -> String {
        self.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")
    }
}

/// One problem of one workload, at the workload's file and line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadError {
    /// The workload's file and line.
    pub location: Location,
    /// The workload.
    pub workload: ResourceId,
    /// The container (or HelmRelease image name) at fault, when the problem is one container's.
    pub container: Option<String>,
    /// The value that cannot be read, as written (the image string), when there is one.
    pub value: Option<String>,
    /// What is wrong, naming the container or annotation.
    pub message: String,
}

impl WorkloadError {
    /// As an [`Error::InvalidInput`](crate::Error::InvalidInput) at its location, naming the
    /// workload.
    pub fn to_error(&self) -> crate::Error {
        crate::Error::invalid(self.location.clone(), format!("{}: {}", self.workload, self.message))
    }
}

impl fmt::Display for WorkloadError {
    /// `file:line: workload: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.location, self.workload, self.message)
    }
}

/// One container (or HelmRelease image) of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerManifest {
    /// The container name (for a HelmRelease, as Flux v1 named its images).
    pub name: String,
    /// Its image.
    pub image: ImageRef,
    /// Whether it is an init container.
    pub init: bool,
    /// Where the image is written.
    pub locator: ContainerLocator,
}

/// Where a container's image is written in its workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerLocator {
    /// `image` of the container at `index` in the pod spec's `field` (`containers` or
    /// `initContainers`).
    Pod {
        /// `containers` or `initContainers`.
        field: &'static str,
        /// The index in that list.
        index: usize,
    },
    /// Parts of a HelmRelease's `spec.values`.
    Helm(HelmImagePaths),
}

/// The workloads among `manifests` (Deployment, DaemonSet, StatefulSet, ReplicaSet, Job,
/// CronJob, Pod and HelmRelease), in the order of `manifests`, requiring every one to be valid.
///
/// # Errors
/// Every problem found (see [`WorkloadManifest::errors`]), each at its workload's file and line
/// and naming the workload: an image that is not a valid reference (naming the container), a
/// policy annotation with a bad value (naming the annotation), a HelmRelease mapping annotation
/// that points nowhere.
pub fn workloads(manifests: &[Manifest]) -> Result<Vec<WorkloadManifest>, ManifestErrors> {
    let found = workloads_with_errors(manifests);
    let mut errors = ManifestErrors::new();
    found.iter().flat_map(|w| &w.errors).for_each(|e| errors.push_error(e.to_error()));
    errors.into_result(found)
}

/// Like [`workloads`], but every workload is returned, each with its own
/// [`errors`](WorkloadManifest::errors): one bad workload does not hide the others, as in
/// Flux v1, which skipped the value it could not read.
pub fn workloads_with_errors(manifests: &[Manifest]) -> Vec<WorkloadManifest> {
    manifests.iter().filter_map(workload).collect()
}

/// The workload `m` describes, if it is one.
fn workload(m: &Manifest) -> Option<WorkloadManifest> {
    let object = &m.object;
    let location = m.location();
    let id = object.id().clone();
    let mut errors = Vec::new();
    let mut fail = |container: Option<&str>, value: Option<&str>, message: String| {
        errors.push(WorkloadError {
            location: location.clone(),
            workload: id.clone(),
            container: container.map(str::to_owned),
            value: value.map(str::to_owned),
            message,
        });
    };
    let mut containers = Vec::new();
    if pod_spec_path(object.kind()).is_some() {
        for e in pod_container_entries(object).unwrap_or_default() {
            let name = e.container.name;
            match e.container.image.parse::<ImageRef>() {
                Ok(image) => containers.push(ContainerManifest {
                    name,
                    image,
                    init: e.container.init,
                    locator: ContainerLocator::Pod { field: e.field, index: e.index },
                }),
                Err(err) => fail(Some(&name), Some(&e.container.image), format!("container {name}: {}", reason(&err))),
            }
        }
    } else if is_helm_release(object) {
        match helm_images(object) {
            Ok(images) => {
                for (name, paths) in images {
                    let reference = paths.read(object).map(|parts| parts.reference());
                    let parsed = reference
                        .as_ref()
                        .map_err(Clone::clone)
                        .and_then(|r| r.parse::<ImageRef>().map_err(|e| reason(&e)));
                    match parsed {
                        Ok(image) => containers.push(ContainerManifest {
                            name,
                            image,
                            init: false,
                            locator: ContainerLocator::Helm(paths),
                        }),
                        Err(message) => {
                            fail(Some(&name), reference.as_deref().ok(), format!("image {name}: {message}"))
                        }
                    }
                }
            }
            Err(mapping_errors) => {
                for e in mapping_errors {
                    let name = e.annotation.split_once('/').map(|(_, name)| name);
                    fail(name, None, format!("annotation {}: {}", e.annotation, e.message));
                }
            }
        }
    } else {
        return None;
    }
    let policies = match policies_from_annotations(&object.annotations()) {
        Ok(p) => p,
        Err(policy_errors) => {
            for e in policy_errors {
                fail(None, None, format!("annotation {}: {}", e.annotation, e.message));
            }
            Policies::default()
        }
    };
    Some(WorkloadManifest { id, file: m.file.clone(), document: m.document, location, containers, policies, errors })
}

/// The workloads among generated objects (each object's origin names its file), as
/// [`workloads_with_errors`] finds them among manifests: each with its own errors.
pub fn workloads_of_objects(objects: &[crate::object::KubeObject]) -> Vec<WorkloadManifest> {
    let manifests: Vec<Manifest> = objects
        .iter()
        .map(|object| Manifest {
            file: object.origin().map(|o| o.file.clone()).unwrap_or_default(),
            document: 0,
            object: object.clone(),
        })
        .collect();
    workloads_with_errors(&manifests)
}

fn reason(error: &crate::Error) -> String {
    match error {
        crate::Error::InvalidInput { location, message } => format!("{message} ({:?})", location.file),
        other => other.to_string(),
    }
}
