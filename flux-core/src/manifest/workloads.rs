//! The workloads among the manifests: their containers, images and policies.

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
    /// Its policies, from its annotations.
    pub policies: Policies,
}

impl WorkloadManifest {
    /// A container by name.
    pub fn container(&self, name: &str) -> Option<&ContainerManifest> {
        self.containers.iter().find(|c| c.name == name)
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
/// CronJob, Pod and HelmRelease), in the order of `manifests`.
///
/// # Errors
/// Every problem found, each at its workload's file and line and naming the workload: an image
/// that is not a valid reference (naming the container), a policy annotation with a bad value
/// (naming the annotation), a HelmRelease mapping annotation that points nowhere.
pub fn workloads(manifests: &[Manifest]) -> Result<Vec<WorkloadManifest>, ManifestErrors> {
    let mut errors = ManifestErrors::new();
    let mut found = Vec::new();
    for m in manifests {
        let object = &m.object;
        let location = m.location();
        let id = object.id().clone();
        let mut fail = |message: String| errors.push(location.clone(), format!("{id}: {message}"));
        let mut containers = Vec::new();
        if pod_spec_path(object.kind()).is_some() {
            for e in pod_container_entries(object).unwrap_or_default() {
                match e.container.image.parse::<ImageRef>() {
                    Ok(image) => containers.push(ContainerManifest {
                        name: e.container.name,
                        image,
                        init: e.container.init,
                        locator: ContainerLocator::Pod { field: e.field, index: e.index },
                    }),
                    Err(err) => fail(format!("container {}: {}", e.container.name, reason(&err))),
                }
            }
        } else if is_helm_release(object) {
            match helm_images(object) {
                Ok(images) => {
                    for (name, paths) in images {
                        let reference = paths.read(object).map(|parts| parts.reference());
                        match reference.and_then(|r| r.parse::<ImageRef>().map_err(|e| reason(&e))) {
                            Ok(image) => containers.push(ContainerManifest {
                                name,
                                image,
                                init: false,
                                locator: ContainerLocator::Helm(paths),
                            }),
                            Err(message) => fail(format!("image {name}: {message}")),
                        }
                    }
                }
                Err(mapping_errors) => {
                    for e in mapping_errors {
                        fail(format!("annotation {}: {}", e.annotation, e.message));
                    }
                }
            }
        } else {
            continue;
        }
        let policies = match policies_from_annotations(&object.annotations()) {
            Ok(p) => p,
            Err(policy_errors) => {
                for e in policy_errors {
                    fail(format!("annotation {}: {}", e.annotation, e.message));
                }
                continue;
            }
        };
        found.push(WorkloadManifest { id, file: m.file.clone(), document: m.document, location, containers, policies });
    }
    errors.into_result(found)
}

/// The workloads among generated objects (each object's origin names its file), as
/// [`workloads`] finds them among manifests.
///
/// # Errors
/// As [`workloads`].
pub fn workloads_of_objects(objects: &[crate::object::KubeObject]) -> Result<Vec<WorkloadManifest>, ManifestErrors> {
    let manifests: Vec<Manifest> = objects
        .iter()
        .map(|object| Manifest {
            file: object.origin().map(|o| o.file.clone()).unwrap_or_default(),
            document: 0,
            object: object.clone(),
        })
        .collect();
    workloads(&manifests)
}

fn reason(error: &crate::Error) -> String {
    match error {
        crate::Error::InvalidInput { location, message } => format!("{message} ({:?})", location.file),
        other => other.to_string(),
    }
}
