//! What `herald run` checks before it starts serving, short of opening the
//! database and the listening socket: every template rendered with sample
//! data, digest subjects, the DKIM key, the signing secret, the SMTP
//! settings, the webhooks' keys. `herald check` calls the same function, so that it passes
//! exactly what `run` would accept, and creates nothing doing so.

use std::sync::Arc;

use crate::config::Config;
use crate::digest::Composer;
use crate::mail::Mailer;
use crate::subscribers::bounces::webhooks::Webhooks;
use crate::subscribers::tokens::Signer;
use crate::templates::Templates;

/// What the checks made, for the daemon to use.
pub struct Checked {
    pub templates: Arc<Templates>,
    /// Problems that do not stop herald (a file in `templates_dir` that is
    /// no template's name).
    pub warnings: Vec<String>,
}

/// Runs every check; the first failure is the error.
pub fn preflight(config: &Arc<Config>) -> anyhow::Result<Checked> {
    let templates = Arc::new(Templates::load(Some(&config.templates_dir))?);
    let signer = Signer::check_config(config)?;
    // Subjects render the sample digest; the DKIM key must load.
    Composer::new(Arc::clone(config), Arc::clone(&templates), signer)?;
    Mailer::check_config(config)?;
    Webhooks::check_config(config)?;
    let warnings = templates.warnings().to_vec();
    Ok(Checked {
        templates,
        warnings,
    })
}
