//! Double opt-in and leaving: what the subscription pages do, apart from
//! HTTP. A request is validated, rate-limited per client network, stored as
//! pending with its consent data, and answered the same way whether or not
//! the address was known (so the form cannot tell anyone who subscribes).
//! The confirmation mail carries a signed, expiring link; unsubscribe and
//! preference links carry a signed management token.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;
use url::Url;

use crate::config::Config;
use crate::mail::Mailer;
use crate::store::{
    EmailError, NewSubscription, Store, StoreError, SubscribeOutcome, Subscriber, SubscriberEmail,
};
use crate::subscribers::choices::{ChoiceError, Choices};
use crate::subscribers::ratelimit::SignupLimiter;
use crate::subscribers::tokens::{Purpose, Signer, TokenError};
use crate::templates::Templates;

/// What the subscribe form sends.
#[derive(Debug, Clone, Default)]
pub struct SubscribeRequest {
    pub email: String,
    pub schedules: Vec<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    InvalidEmail(#[from] EmailError),
    #[error("there is no choice called `{0}`")]
    UnknownChoice(String),
    /// With how long until the next request would be accepted.
    #[error("too many requests from this address; try again later")]
    RateLimited(Duration),
    /// The confirmation could not be sent right now, or the database did
    /// not answer.
    #[error("the confirmation email could not be sent; try again later")]
    Unavailable,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What [`Subscriptions::send_confirmation`] did.
#[derive(Debug)]
pub enum Confirmation {
    Sent,
    /// One went out at `last`, within `subscribers.resend_after`.
    Throttled {
        last: DateTime<Utc>,
    },
    /// The transport refused; nothing is recorded as sent.
    Failed(crate::mail::SendError),
}

pub struct Subscriptions {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    mailer: Arc<Mailer>,
    signer: Signer,
    templates: Arc<Templates>,
    choices: Choices,
    /// Sign-up requests per client network.
    limiter: SignupLimiter,
}

impl Subscriptions {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        mailer: Arc<Mailer>,
        signer: Signer,
        templates: Arc<Templates>,
    ) -> Subscriptions {
        Subscriptions {
            choices: Choices::new(&config),
            limiter: SignupLimiter::per_hour(config.subscribers.max_requests_per_ip_per_hour),
            config,
            store,
            mailer,
            signer,
            templates,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn templates(&self) -> &Arc<Templates> {
        &self.templates
    }

    pub fn mailer(&self) -> &Arc<Mailer> {
        &self.mailer
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A public page of herald's: `/subscribe`, `/confirm`, … at the root of
    /// the feeds' origin, with an optional token.
    pub fn page_url(&self, page: &str, token: Option<&str>) -> Url {
        self.config.page_url(page, token)
    }

    /// A management token (unsubscribe and preferences) for `id`.
    pub fn manage_token(&self, id: i64, now: DateTime<Utc>) -> String {
        self.signer.manage_token(id, now)
    }

    /// Handles the subscribe form. `Ok` looks the same whatever the
    /// address's history.
    pub async fn request(
        &self,
        req: SubscribeRequest,
        ip: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), RequestError> {
        if let Some(ip) = ip {
            self.limiter.check(ip).map_err(RequestError::RateLimited)?;
        }
        let email = SubscriberEmail::parse_new(&req.email, self.config.mail.smtputf8)?;
        let schedules = self.checked_schedules(req.schedules)?;
        let tags = self.checked_tags(req.tags)?;
        let outcome = self
            .store
            .subscribe(NewSubscription {
                email,
                name: None,
                schedules,
                tags,
                at: now,
                ip: ip.map(|i| i.to_string()),
                source: "web-form".into(),
                confirmed_note: None,
            })
            .await
            .map_err(request_error)?;
        let sub = match outcome {
            SubscribeOutcome::Pending(sub) => sub,
            // Already active: nothing to send, and the same answer.
            // A complainer or an erased address gets the same page as
            // anyone, and no mail.
            SubscribeOutcome::AlreadyActive(_)
            | SubscribeOutcome::Active(_)
            | SubscribeOutcome::Suppressed => return Ok(()),
        };
        let sent = self.send_confirmation(&sub, now).await.map_err(|e| {
            // A database outage while noting the mail asks the visitor to
            // come back, as any other outage does.
            match e.downcast::<StoreError>() {
                Ok(store) => request_error(store),
                Err(e) => RequestError::Internal(e),
            }
        })?;
        match sent {
            Confirmation::Sent => Ok(()),
            Confirmation::Throttled { .. } => {
                tracing::info!(subscriber = sub.id, "confirmation re-send throttled");
                Ok(())
            }
            Confirmation::Failed(e) => {
                tracing::error!(
                    subscriber = sub.id,
                    "cannot send the confirmation email: {e}"
                );
                Err(RequestError::Unavailable)
            }
        }
    }

    /// Mails `sub` (pending) a confirmation link, unless one went out less
    /// than `subscribers.resend_after` ago. Also for `herald subscribers
    /// confirm-again`, through the same transport as the daemon.
    pub async fn send_confirmation(
        &self,
        sub: &Subscriber,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Confirmation> {
        let resend_after =
            chrono::Duration::from_std(self.config.subscribers.resend_after.0).unwrap_or_default();
        if let Some(last) = sub.confirmation_sent_at.filter(|t| now - *t < resend_after) {
            return Ok(Confirmation::Throttled { last });
        }
        let message = self.confirmation_message(sub, now)?;
        match self.mailer.send(&message).await {
            Ok(()) => {
                self.store.confirmation_sent(sub.id, now).await?;
                Ok(Confirmation::Sent)
            }
            Err(e) => Ok(Confirmation::Failed(e)),
        }
    }

    /// When a pending subscriber who does not confirm is removed: the
    /// purge after `subscribers.pending_purge_after` from their request or
    /// their last confirmation email, whichever is later.
    pub fn purge_due(&self, sub: &Subscriber) -> DateTime<Utc> {
        let from = sub
            .confirmation_sent_at
            .map_or(sub.consent.requested_at, |t| {
                t.max(sub.consent.requested_at)
            });
        from + chrono::Duration::from_std(self.config.subscribers.pending_purge_after.0)
            .unwrap_or_default()
    }

    /// The confirmation link's target.
    pub async fn confirm(&self, token: &str, now: DateTime<Utc>) -> Result<Subscriber, TokenError> {
        let id = self.signer.verify(token, Purpose::Confirm, now)?;
        match self.store.confirm(id, now).await {
            Ok(Some(sub)) => Ok(sub),
            Ok(None) => Err(TokenError::Invalid),
            Err(e) => Err(link_error(id, "confirming", e)),
        }
    }

    /// The subscriber a management token belongs to (changes nothing).
    pub async fn manage(&self, token: &str, now: DateTime<Utc>) -> Result<Subscriber, TokenError> {
        let id = self.signer.verify(token, Purpose::Manage, now)?;
        match self.store.get(id).await {
            Ok(Some(sub)) => Ok(sub),
            Ok(None) => Err(TokenError::Invalid),
            Err(e) => Err(link_error(id, "looking up", e)),
        }
    }

    pub async fn unsubscribe(
        &self,
        token: &str,
        how: &str,
        now: DateTime<Utc>,
    ) -> Result<Subscriber, TokenError> {
        let sub = self.manage(token, now).await?;
        self.store
            .unsubscribe(sub.id, now, how)
            .await
            .map_err(|e| link_error(sub.id, "unsubscribing", e))?;
        Ok(sub)
    }

    pub async fn save_preferences(
        &self,
        token: &str,
        schedules: Vec<String>,
        tags: Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<Result<Subscriber, RequestError>, TokenError> {
        let sub = self.manage(token, now).await?;
        let checked = self
            .checked_schedules(schedules)
            .and_then(|s| Ok((s, self.checked_tags(tags)?)));
        let (schedules, tags) = match checked {
            Ok(pair) => pair,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.store.set_preferences(sub.id, &schedules, &tags).await {
            return Ok(Err(request_error(e)));
        }
        Ok(self
            .manage(token, now)
            .await
            .map_err(|_| RequestError::Internal(anyhow::anyhow!("subscriber vanished"))))
    }

    /// Removes pending sign-ups older than `subscribers.pending_purge_after`
    /// (counted from their last confirmation email, if later).
    pub async fn purge(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let age = chrono::Duration::from_std(self.config.subscribers.pending_purge_after.0)
            .unwrap_or_default();
        Ok(self.store.purge_pending(now - age).await?)
    }

    /// Ticked schedules, which must exist; none ticked means all of them.
    fn checked_schedules(&self, chosen: Vec<String>) -> Result<Vec<String>, RequestError> {
        self.choices.schedules(chosen, true).map_err(unknown_choice)
    }

    fn checked_tags(&self, chosen: Vec<String>) -> Result<Vec<String>, RequestError> {
        self.choices.offered_tags(chosen).map_err(unknown_choice)
    }

    fn confirmation_message(
        &self,
        sub: &Subscriber,
        now: DateTime<Utc>,
    ) -> anyhow::Result<lettre::Message> {
        let expiry = self.config.subscribers.confirm_expiry.0;
        let expires = now + chrono::Duration::from_std(expiry).unwrap_or_default();
        let token = self.signer.sign(Purpose::Confirm, sub.id, expires);
        let link = self.page_url("confirm", Some(&token));
        let site = &self.config.site;
        let data = json!({
            "site_title": site.title,
            "site_url": site.base_url.url().as_str(),
            "language": site.language.as_str(),
            "email": sub.email.as_str(),
            "link": link.as_str(),
            "expiry_hours": expiry.as_secs() / 3600,
        });
        let text = self.templates.render("confirm.txt", &data)?;
        let html = self.templates.render("confirm.html", &data)?;
        let subject = format!("Confirm your subscription to {}", site.title);
        let message = self
            .mailer
            .compose(&sub.email, &subject, text, html)?
            .date(now.into())
            .build()
            .context("building the confirmation email")?;
        Ok(message)
    }
}

/// A store error behind a signed link: an outage is "try again later",
/// anything else a logged internal error; neither says the link is bad.
fn link_error(id: i64, doing: &str, e: StoreError) -> TokenError {
    if e.is_unavailable() {
        tracing::warn!("{doing} subscriber {id}: {e}");
    } else {
        tracing::error!("{doing} subscriber {id}: {e:#}");
    }
    TokenError::Unavailable
}

fn request_error(e: StoreError) -> RequestError {
    match e {
        StoreError::Unavailable(why) => {
            tracing::warn!("subscribe: {why}");
            RequestError::Unavailable
        }
        other => RequestError::Internal(other.into()),
    }
}

fn unknown_choice(e: ChoiceError) -> RequestError {
    RequestError::UnknownChoice(e.choice().chars().take(64).collect())
}
