//! The sync marker as Flux v1 wrote it: an annotated tag (`git tag -a -m "Sync pointer"`),
//! signed with the signing key when there is one (`git tag --local-user=KEY`).

use flux_core::{Author, Result};
use gix::ObjectId;

use crate::config::Signing;
use crate::errors::local_error;
use crate::sign::sign;

/// The message of the sync tag, Flux v1's.
pub(crate) const SYNC_TAG_MESSAGE: &str = "Sync pointer\n";

/// Bytes already encoded as a tag object.
struct RawTag(Vec<u8>);

impl gix::objs::WriteTo for RawTag {
    fn write_to(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        out.write_all(&self.0)
    }

    fn kind(&self) -> gix::objs::Kind {
        gix::objs::Kind::Tag
    }

    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

/// Writes an annotated tag object named `name` (the short name) on commit `target` into the
/// mirror, tagged by `tagger` and signed when `signing` is given, and returns its id.
pub(crate) fn annotated(
    repo: &gix::Repository,
    name: &str,
    target: ObjectId,
    tagger: &Author,
    signing: Option<&Signing>,
) -> Result<ObjectId> {
    let tag = gix::objs::Tag {
        target,
        target_kind: gix::objs::Kind::Commit,
        name: name.into(),
        tagger: Some(gix::actor::Signature {
            name: tagger.name.as_str().into(),
            email: tagger.email.as_str().into(),
            time: gix::date::Time::now_local_or_utc(),
        }),
        message: SYNC_TAG_MESSAGE.into(),
        signature: None,
    };
    let mut bytes = Vec::new();
    gix::objs::WriteTo::write_to(&tag, &mut bytes).map_err(|e| local_error("encoding the sync tag", &e))?;
    // Git appends a tag's signature right after the message: the signed payload is everything
    // before it.
    if let Some(signing) = signing {
        let signature = sign(signing, &bytes, &format!("the sync tag {name}"))?;
        bytes.extend_from_slice(signature.as_bytes());
        if !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
    }
    let id = repo.write_object(RawTag(bytes)).map_err(|e| local_error("writing the sync tag", &e))?;
    Ok(id.detach())
}
