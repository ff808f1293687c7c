//! `export`: a container's root filesystem as a tarball, running or stopped.

use std::io::Write;

use crate::engine::Engine;
use crate::error::Result;
use crate::view::Access;

impl Engine {
    /// Writes container `query`'s root filesystem to `out` as a rootfs tarball (its
    /// volumes not included, as docker leaves them out). A running container's root is
    /// read as it is; a stopped one's is mounted read-only (nosuid, nodev) in a private
    /// mount namespace of a thread of its own, and stays stopped while it is read (see
    /// the `view` module).
    pub fn export(&self, query: &str, out: impl Write + Send) -> Result<()> {
        let c = self.container(query)?;
        self.with_view(&c, Access::Read, false, |view| {
            basic_rootfs::export::write_tree(view.root.path(), out)?;
            Ok(())
        })
    }
}
