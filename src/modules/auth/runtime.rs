//! auth in a worker: `www_authorize`/`proxy_authorize` check a request's
//! digest credentials against the subscriber table, `www_challenge`/
//! `proxy_challenge` reply 401/407 with a fresh nonce (MD5 by default;
//! SHA-256 first when auth's `algorithm` asks, RFC 8760 §2.4), and `check_to`/`check_from` tie the
//! authenticated user to the To/From user (what the seed's default
//! script asks for, so no one registers someone else's address).

use std::io::Write as _;

use crate::server::log_limit::PerSource;

use crate::cfg::Config;
use crate::cfg::program::Param;
use crate::cfg::program::Program;
use crate::db::conn::Value;
use crate::db::handle::Handle;
use crate::modules::auth::cache::{self, CredCache, Known};
use crate::modules::auth::digest::{self, Algorithm, Challenge};
use crate::modules::auth::nonce::{self, NonceCounts, NonceError};
use crate::modules::auth::throttle::{Over, Throttle};
use crate::modules::auth::{Params, subscriber};
use crate::modules::def::{Carved, Cx, Runtime, Start, Wants, bad_args};
use crate::modules::usrloc::unix_now;
use crate::script::MsgCtx;
use crate::sip::{Message, Method};
use rser_shm::Carver;

/// What a worker keeps for auth.
pub struct AuthState {
    params: Params,
    secret: [u8; 32],
    counts: NonceCounts,
    /// The subscriber database, through this process's bounded handle
    /// (made on first use, in the worker).
    db: Option<Handle>,
    /// What the subscriber table said lately, for every process.
    cache: CredCache,
    /// `nonce_count_redis`: the counts every node shares.
    shared_counts: Option<crate::modules::auth::shared_counts::SharedCounts>,
    /// How long a query may take (db_mysql's `timeout_interval`...).
    db_timeout: std::time::Duration,
    /// Database failures logged at most once a second.
    db_log: crate::server::log_limit::LogLimit,
    /// Per message: the last authorize found a stale nonce (the challenge
    /// then says `stale=true`), and who was authenticated.
    stale: bool,
    user: Vec<u8>,
    realm: Vec<u8>,
    /// Whether those credentials came in Proxy-Authorization.
    proxy: bool,
    /// Failed attempts logged at most once a second per source.
    failure_log: PerSource,
    /// Sources and users refused after too many failures (None: off).
    throttle: Option<Throttle>,
    /// A challenge's header lines (reused).
    headers: Vec<u8>,
}

impl AuthState {
    pub fn new(config: &Config, shm: &AuthShm) -> AuthState {
        let (secret, counts) = (shm.secret, shm.counts);
        let mut params = Params::from_config(config);
        if !shm.sha256_column {
            params.columns.sha256 = None;
        }
        let shared_counts = params
            .nonce_count_redis
            .as_deref()
            .and_then(|u| crate::db::redis::RedisUrl::parse(u).ok())
            .map(|u| {
                crate::modules::auth::shared_counts::SharedCounts::new(u, params.nonce_expire)
            });
        let params_for_throttle = params.clone();
        let db_timeout = match params.db_url.as_deref().map(crate::db::served) {
            Some(Ok(url)) => crate::db::timeout(config, &url),
            _ => std::time::Duration::from_secs(2),
        };
        // auth's `secret`, when set, instead of the random one.
        let secret = params.secret.as_ref().map_or(secret, |s| {
            use sha2::Digest as _;
            sha2::Sha256::digest(s.as_bytes()).into()
        });
        AuthState {
            params,
            secret,
            counts,
            db: None,
            cache: shm.cache,
            shared_counts,
            db_timeout,
            db_log: Default::default(),
            stale: false,
            user: Vec::new(),
            realm: Vec::new(),
            proxy: false,
            failure_log: PerSource::default(),
            throttle: Throttle::new(shm.throttle_counts, &params_for_throttle),
            headers: Vec::new(),
        }
    }
}

/// The subscriber tables the script authorizes against.
pub fn tables(program: &Program) -> Vec<String> {
    program.string_args(&["www_authorize", "proxy_authorize", "auth_check"], 1)
}

/// At start-up: the subscriber database opens and has its tables at
/// Kamailio's version, or the server does not start. Whether the tables
/// have the SHA-256 HA1 column.
pub fn prepare(config: &Config) -> Result<bool, String> {
    check(config)?;
    let tables = tables(&config.program);
    let params = Params::from_config(config);
    let Some(url) = params.db_url.filter(|_| !tables.is_empty()) else {
        return Ok(false);
    };
    let url = crate::db::served(&url)?;
    let needs: Vec<_> = tables
        .iter()
        .map(|t| subscriber::need(t, &params.columns))
        .collect();
    let mut conn = crate::db::schema::open_prepared(&url, &needs, crate::db::TOOL_TIMEOUT)
        .map_err(|e| format!("auth {e}"))?;
    let sha = params.columns.sha256.as_deref().unwrap_or("ha1_sha256");
    Ok(tables
        .iter()
        .all(|t| subscriber::has_column(&mut conn, t, sha)))
}

/// auth's parameters as a start reads them (`rser -c` says the same):
/// the algorithms, and a database this build serves when the script
/// authorizes against one.
pub fn check(config: &Config) -> Result<Vec<String>, String> {
    crate::modules::auth::parse_algorithms(config.modparam_str(
        "auth",
        "algorithm",
        crate::modules::auth::DEFAULT_ALGORITHMS,
    ))?;
    let params = Params::from_config(config);
    if !config
        .modparam_str("auth_db", "load_credentials", "")
        .is_empty()
    {
        return Err(
            "auth_db load_credentials: loading subscriber columns into AVPs is not supported (set it to \"\")"
                .into(),
        );
    }
    let c = &params.columns;
    for (name, column) in [
        ("user_column", &c.user),
        ("domain_column", &c.domain),
        ("password_column", &c.password),
        ("password_column_2", &c.ha1b),
    ] {
        crate::db::check_table_name(column)
            .map_err(|_| format!("{name} {column:?}: not a plain SQL name"))?;
    }
    if let Some(sha) = &c.sha256 {
        crate::db::check_table_name(sha)
            .map_err(|_| format!("hash_column_sha256 {sha:?}: not a plain SQL name"))?;
    }
    if tables(&config.program).is_empty() {
        return Ok(Vec::new());
    }
    let url = params.db_url.ok_or_else(|| {
        format!(
            "www_authorize/proxy_authorize need modparam(\"auth_db\", \"db_url\", URL){}",
            crate::db::SER_DEFAULT_URL_NOTE
        )
    })?;
    crate::db::served(&url)?;
    if let Some(u) = &params.nonce_count_redis {
        crate::db::redis::RedisUrl::parse(u)?;
    }
    Ok(Vec::new())
}

/// The realm the script names, or when it gives none the To host for
/// REGISTER and the From host otherwise (Kamailio's rule).
fn realm_of<'m>(msg: &'m Message<'_>, realm: &'m str) -> &'m [u8] {
    if !realm.is_empty() {
        return realm.as_bytes();
    }
    let who = if msg.method() == Some(Method::Register) {
        msg.to()
    } else {
        msg.from()
    };
    who.ok()
        .and_then(|n| n.uri().ok())
        .map(|u| u.host_raw)
        .unwrap_or_default()
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// None for our realm: the usual first request, before the challenge.
    NoCredentials,
    Malformed,
    BadNonce,
    Stale,
    Replayed,
    UnknownUser,
    WrongPassword,
    Database,
    /// Refused unchecked: too many failures lately.
    Throttled(Over),
}

impl Failure {
    /// The action's value, as Kamailio's auth functions return it (for a
    /// script's `switch ($rc)`): -2 wrong password, -3 unknown user, -4
    /// stale nonce, -5 no credentials, -6 reused nonce, else -1.
    fn code(self) -> i32 {
        match self {
            Failure::WrongPassword => -2,
            Failure::UnknownUser => -3,
            Failure::Stale => -4,
            Failure::NoCredentials => -5,
            Failure::Replayed => -6,
            Failure::Malformed | Failure::BadNonce | Failure::Database | Failure::Throttled(_) => {
                -1
            }
        }
    }

    fn text(self) -> &'static str {
        match self {
            Failure::NoCredentials => "no credentials",
            Failure::Malformed => "malformed credentials",
            Failure::BadNonce => "a nonce not ours",
            Failure::Stale => "a stale nonce",
            Failure::Replayed => "a replayed nonce count",
            Failure::UnknownUser => "unknown user",
            Failure::WrongPassword => "wrong password",
            Failure::Database => "the subscriber database failed",
            Failure::Throttled(Over::Source) => "refused: too many failures from this address",
            Failure::Throttled(Over::User) => "refused: too many failures for this user",
        }
    }
}

/// At most 64 bytes of client text, lossily decoded (logged with `{:?}`,
/// so control characters cannot forge log lines).
fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(64)]).into_owned()
}

/// One line per failed attempt at the default log level, for
/// fail2ban-style tools: the user, realm and source (the first two as
/// the client sent them, quoted and escaped), at most once a second
/// per source address.
fn log_failure(
    ctx: &MsgCtx<'_, '_>,
    realm: &str,
    why: Failure,
    limit: &mut PerSource,
    now_ms: u64,
) {
    let Some(held) = limit.allow(ctx.src.ip(), now_ms) else {
        return;
    };
    let msg = ctx.msg;
    let realm = realm_of(msg, realm);
    let user = msg
        .credentials(false)
        .chain(msg.credentials(true))
        .filter_map(Result::ok)
        .find_map(|c| c.username)
        .unwrap_or_default();
    log::warn!(
        "auth: failed for user={:?} realm={:?} from {}: {}{}",
        printable(user),
        printable(realm),
        ctx.src,
        why.text(),
        crate::server::log_limit::held_text(held)
    );
}

/// What an unknown user's response is checked against (as long as a
/// SHA-256 HA1; MD5's is its first half).
const UNKNOWN_HA1: [u8; 64] = [b'0'; 64];

/// The request's credentials for `realm` (a request may carry others'),
/// parsed once for the throttle and the check.
fn our_credentials<'m>(
    msg: &'m Message<'_>,
    realm: &[u8],
    proxy: bool,
) -> Option<crate::sip::DigestCredentials<'m>> {
    msg.credentials(proxy)
        .filter_map(Result::ok)
        .find(|c| c.realm.is_some_and(|r| r.eq_ignore_ascii_case(realm)))
}

impl AuthState {
    /// What the subscriber table says of `user` at `realm`: from the
    /// shared cache, else asked (waiting at most the database timeout),
    /// the answer cached for `auth_cache_expires` seconds.
    fn credentials(
        &mut self,
        table: &str,
        user: &[u8],
        realm: &[u8],
        counts: &crate::modules::def::Counts<'_>,
        now_ms: u64,
    ) -> Result<Known, Failure> {
        let key = cache::key(table, user, realm);
        let expires = self.params.cache_expires;
        if expires > 0
            && let Some(k) = self.cache.get(key, now_ms)
        {
            counts.add(super::AUTH_CACHE_HITS, 1);
            return Ok(k);
        }
        let (Ok(u), Ok(r)) = (std::str::from_utf8(user), std::str::from_utf8(realm)) else {
            return Ok(Known::default());
        };
        let p = &self.params;
        let url = p.db_url.as_deref().unwrap_or_default();
        let db = match &mut self.db {
            Some(h) => h,
            None => {
                let Ok(url) = crate::db::served(url) else {
                    return Err(Failure::Database);
                };
                self.db.insert(Handle::new(url, self.db_timeout))
            }
        };
        let sql = subscriber::select(table, &p.columns, p.use_domain);
        let mut params = vec![Value::Text(u.into())];
        if p.use_domain {
            params.push(Value::Text(r.into()));
        }
        let rows = match db.query(&sql, &params, now_ms) {
            Ok(rows) => {
                counts.add(super::AUTH_DB_QUERIES, 1);
                rows
            }
            Err(e) => {
                if let Some(held) = self.db_log.allow(now_ms) {
                    log::error!(
                        "auth: subscriber table {table}: {e}{}",
                        crate::server::log_limit::held_text(held)
                    );
                }
                counts.add(super::AUTH_DB_ERRORS, 1);
                return Err(Failure::Database);
            }
        };
        let known = match subscriber::secret_of(&rows) {
            None => Known::default(),
            Some(s) => Known {
                found: true,
                md5: s.ha1_by(p.calculate_ha1, Algorithm::Md5, user, realm),
                sha256: s.ha1_by(p.calculate_ha1, Algorithm::Sha256, user, realm),
            },
        };
        if expires > 0 {
            self.cache.put(key, &known, now_ms + expires * 1000, now_ms);
        }
        Ok(known)
    }

    /// `www_authorize(realm, table)` (`proxy`: `proxy_authorize`).
    fn authorize(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        realm: &str,
        table: &str,
        proxy: bool,
    ) -> i32 {
        let msg = ctx.msg;
        let creds = our_credentials(msg, realm_of(msg, realm), proxy);
        let user = creds.and_then(|c| c.username);
        // Too many failures lately from this source or for this user: no
        // check at all, a 403, and the script ends.
        if let (Some(t), Some(user)) = (&self.throttle, user)
            && let Some(over) = t.refused(ctx.src.ip(), user, realm_of(msg, realm), cx.now_ms)
        {
            cx.counts.add(super::AUTH_THROTTLED, 1);
            log_failure(
                ctx,
                realm,
                Failure::Throttled(over),
                &mut self.failure_log,
                cx.now_ms,
            );
            cx.shell.reply(ctx, 403, b"Forbidden", b"");
            return 0;
        }
        let r = self.authorize_in(ctx, creds, realm, table, proxy, &cx.counts, cx.now_ms);
        if let (Some(t), Some(user), Err(Failure::WrongPassword | Failure::UnknownUser)) =
            (&self.throttle, user, r)
            && let Some(over) = t.failed(ctx.src.ip(), user, realm_of(msg, realm), cx.now_ms)
        {
            cx.counts.add(super::AUTH_BLOCKED, 1);
            log::warn!(
                "auth: refusing attempts for a while: {} failed {} authentications within {} s (user={:?} from {})",
                over.text(),
                match over {
                    Over::Source => self.params.failed_limit,
                    Over::User => self.params.failed_user_limit,
                },
                self.params.failed_window,
                printable(user),
                ctx.src
            );
        }
        if r == Err(Failure::Database) {
            // Not the client's fault: no challenge (its phone would ask the
            // user for a password), a 500 it retries after a while, and the
            // script ends here (RFC 3261 §21.5.1, §20.33).
            cx.shell
                .reply(ctx, 500, b"Server Internal Error", b"Retry-After: 5\r\n");
            return 0;
        }
        if let Err(why) = r {
            // The usual first request, before any challenge, is not a
            // failure; everything else is counted and logged.
            if why != Failure::NoCredentials {
                cx.counts.add(super::AUTH_FAILURES, 1);
                log_failure(ctx, realm, why, &mut self.failure_log, cx.now_ms);
            }
        }
        match r {
            Ok(()) => 1,
            Err(why) => why.code(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn authorize_in(
        &mut self,
        ctx: &MsgCtx<'_, '_>,
        creds: Option<crate::sip::DigestCredentials<'_>>,
        realm: &str,
        table: &str,
        proxy: bool,
        counts: &crate::modules::def::Counts<'_>,
        now_ms: u64,
    ) -> Result<(), Failure> {
        let a = self;
        let msg = ctx.msg;
        let realm = realm_of(msg, realm);
        let Some(c) = creds else {
            return Err(Failure::NoCredentials);
        };
        let (Some(user), Some(nonce), Some(resp)) = (c.username, c.nonce, c.response) else {
            return Err(Failure::Malformed);
        };
        let Some(alg) = Algorithm::parse(c.algorithm) else {
            return Err(Failure::Malformed);
        };
        let index = match nonce::check(&a.secret, nonce, unix_now(), a.params.nonce_expire) {
            Ok(i) => i,
            Err(NonceError::Stale) => {
                a.stale = true;
                return Err(Failure::Stale);
            }
            Err(_) => return Err(Failure::BadNonce),
        };
        let qop_auth = match c.qop {
            None => None,
            Some(q) if q.eq_ignore_ascii_case(b"auth") => {
                let (Some(nc), Some(cnonce)) = (c.nc, c.cnonce) else {
                    return Err(Failure::Malformed);
                };
                let count = std::str::from_utf8(nc)
                    .ok()
                    .and_then(|s| u32::from_str_radix(s, 16).ok());
                let Some(count) = count.filter(|_| nc.len() == 8) else {
                    return Err(Failure::Malformed);
                };
                let shared = match &mut a.shared_counts {
                    Some(sc) => match sc.use_count(nonce, count, now_ms) {
                        Ok(fresh) => Some(fresh),
                        Err(e) => {
                            counts.add(super::AUTH_NC_REDIS_ERRORS, 1);
                            if let Some(held) = a.db_log.allow(now_ms) {
                                log::error!(
                                    "auth: nonce counts: Redis did not answer, this node's own counts serve: {e}{}",
                                    crate::server::log_limit::held_text(held)
                                );
                            }
                            None
                        }
                    },
                    None => None,
                };
                match shared.map_or_else(
                    || a.counts.use_count(index, count),
                    |fresh| {
                        if fresh {
                            Ok(())
                        } else {
                            Err(NonceError::Replayed)
                        }
                    },
                ) {
                    Ok(()) => {}
                    Err(NonceError::Stale) => {
                        a.stale = true;
                        return Err(Failure::Stale);
                    }
                    Err(_) => return Err(Failure::Replayed),
                }
                Some((nc, cnonce))
            }
            Some(_) => return Err(Failure::Malformed), // auth-int is not served
        };
        let known = a.credentials(table, user, realm, counts, now_ms)?;
        let ha1 = match alg {
            Algorithm::Md5 => known.md5,
            Algorithm::Sha256 => known.sha256,
        };
        // An unknown user costs the same digest as a known one with a
        // wrong password, and gets the same answer: neither the reply nor
        // its time tells a guesser which names exist.
        let expected = digest::response(
            alg,
            ha1.as_ref().map_or(
                match alg {
                    Algorithm::Md5 => &UNKNOWN_HA1[..32],
                    Algorithm::Sha256 => &UNKNOWN_HA1[..],
                },
                |h| h.as_bytes(),
            ),
            &Challenge {
                nonce,
                qop_auth,
                method: msg.method_raw(),
                uri: c.uri.unwrap_or_default(),
            },
        );
        let matches = digest::same(expected.as_bytes(), resp);
        if !known.found || ha1.is_none() {
            return Err(Failure::UnknownUser);
        }
        if !matches {
            return Err(Failure::WrongPassword);
        }
        a.user.clear();
        a.user.extend_from_slice(user);
        a.realm.clear();
        a.realm.extend_from_slice(realm);
        a.proxy = proxy;
        Ok(())
    }

    /// `www_challenge(realm, qop)` (`proxy`: `proxy_challenge`): 401/407
    /// with one challenge per algorithm (MD5 alone by default) on
    /// one fresh nonce.
    fn challenge(
        &mut self,
        cx: &mut Cx<'_>,
        ctx: &mut MsgCtx<'_, '_>,
        realm: &str,
        qop: bool,
        proxy: bool,
    ) -> i32 {
        let mut headers = std::mem::take(&mut self.headers);
        let a = &*self;
        let realm = realm_of(ctx.msg, realm);
        let n = nonce::issue(&a.secret, unix_now(), a.counts.fresh());
        let name = if proxy {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        headers.clear();
        for &alg in &a.params.algorithms {
            let _ = write!(headers, "{name}: Digest realm=\"");
            headers.extend_from_slice(realm);
            let _ = write!(headers, "\", nonce=\"{n}\"");
            if qop {
                headers.extend_from_slice(b", qop=\"auth\"");
            }
            let _ = write!(headers, ", algorithm={}", alg.name());
            if a.stale {
                headers.extend_from_slice(b", stale=true");
            }
            headers.extend_from_slice(b"\r\n");
        }
        let (code, reason) = if proxy {
            (407, &b"Proxy Authentication Required"[..])
        } else {
            (401, &b"Unauthorized"[..])
        };
        cx.shell.reply(ctx, code, reason, &headers);
        self.headers = headers;
        1
    }

    /// `consume_credentials()` (Kamailio's auth): the credentials that
    /// authorized this request are not relayed onward, so the next hop
    /// never sees the user's digest. False when nothing was authorized.
    fn consume_credentials(&self, ctx: &mut MsgCtx<'_, '_>) -> i32 {
        let a = self;
        if a.user.is_empty() {
            return -1;
        }
        let msg = ctx.msg;
        let kind = match a.proxy {
            true => crate::sip::HeaderKind::ProxyAuthorization,
            false => crate::sip::HeaderKind::Authorization,
        };
        let mut removed = false;
        for h in msg.all(kind) {
            let ours = crate::sip::DigestCredentials::parse(msg.value(h))
                .is_ok_and(|c| c.realm.is_some_and(|r| r.eq_ignore_ascii_case(&a.realm)));
            if ours {
                removed |= ctx.add_edit(crate::script::ctx::TextEdit {
                    start: usize::from(h.line.start),
                    end: usize::from(h.line.end),
                    text: Vec::new(),
                });
            }
        }
        if removed { 1 } else { -1 }
    }

    /// `check_to()` / `check_from()`: the authenticated user is the To
    /// (From) URI's user.
    /// A realm argument with its pseudo-variables filled.
    fn realm_text(&self, realm: &crate::cfg::pv::Format, ctx: &MsgCtx<'_, '_>) -> String {
        let mut out = Vec::new();
        crate::script::pv::format_into(realm, ctx, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn check_user(&self, ctx: &MsgCtx<'_, '_>, to: bool) -> i32 {
        let a = self;
        if a.user.is_empty() {
            return -1;
        }
        let who = if to { ctx.msg.to() } else { ctx.msg.from() };
        match who.ok().and_then(|n| n.uri().ok()).and_then(|u| u.user) {
            Some(u) if u == a.user.as_slice() => 1,
            _ => -1,
        }
    }
}

impl Runtime for AuthState {
    fn wants(&self) -> Wants {
        Wants {
            per_message: true,
            ..Wants::default()
        }
    }

    fn message_start(&mut self) {
        self.stale = false;
        self.user.clear();
    }

    fn call(&mut self, cx: &mut Cx<'_>, ctx: &mut MsgCtx<'_, '_>, id: u8, args: &[Param]) -> i32 {
        use super::actions::*;
        match (id, args) {
            (WWW_AUTHORIZE | PROXY_AUTHORIZE, [Param::Str(realm), Param::Str(table)]) => {
                self.authorize(cx, ctx, realm, table, id == PROXY_AUTHORIZE)
            }
            (WWW_CHALLENGE | PROXY_CHALLENGE, [Param::Str(realm), Param::Int(qop)]) => {
                self.challenge(cx, ctx, realm, *qop != 0, id == PROXY_CHALLENGE)
            }
            (AUTH_CHECK, [Param::Fmt(realm), Param::Str(table), Param::Int(flags)]) => {
                let realm = self.realm_text(realm, ctx);
                let register = ctx.msg.method() == Some(crate::sip::Method::Register);
                let r = self.authorize(cx, ctx, &realm, table, !register);
                if r > 0 && flags & CHECK_IDENTITY != 0 && self.check_user(ctx, register) < 0 {
                    // Kamailio's -8: the user is not the To/From user.
                    return -8;
                }
                r
            }
            (AUTH_CHALLENGE, [Param::Fmt(realm), Param::Int(flags)]) => {
                let realm = self.realm_text(realm, ctx);
                let register = ctx.msg.method() == Some(crate::sip::Method::Register);
                self.challenge(cx, ctx, &realm, flags & QOP_AUTH != 0, !register)
            }
            (CHECK_TO, []) => self.check_user(ctx, true),
            (CHECK_FROM, []) => self.check_user(ctx, false),
            (CONSUME_CREDENTIALS, []) => self.consume_credentials(ctx),
            _ => bad_args("auth", id),
        }
    }
}

/// What auth keeps in shared memory: the nonce counts, and the nonces'
/// signing key (fresh at every start, inherited by every process).
pub struct AuthShm {
    counts: NonceCounts,
    secret: [u8; 32],
    cache: CredCache,
    /// Whether the subscriber tables have the SHA-256 HA1 column.
    sha256_column: bool,
    /// Failed authentications per source and user (`throttle.rs`).
    throttle_counts: crate::modules::pike::table::Counts,
}

/// Credentials cached, at most (128 bytes each).
const CACHE_SLOTS_MAX: usize = 65_536;

/// Share of the region given to the nonce counts (one slot per nonce in
/// flight).
const NONCE_SHARE: usize = 64;

/// In the master: the subscriber database checked, the nonce counts
/// carved.
pub fn carve(config: &Config, carver: &mut Carver<'_>, region: usize) -> Result<Carved, String> {
    let sha256_column = prepare(config)?;
    let slots = region / NONCE_SHARE / NonceCounts::BYTES_PER_SLOT;
    let counts =
        NonceCounts::carve(carver, slots).ok_or("shared memory too small for auth's nonces")?;
    let cached = (region / NONCE_SHARE / CredCache::BYTES_PER_SLOT).clamp(64, CACHE_SLOTS_MAX);
    let cache =
        CredCache::carve(carver, cached).ok_or("shared memory too small for auth's cache")?;
    let throttle_counts = crate::modules::auth::throttle::carve(carver)
        .ok_or("shared memory too small for auth's failure counts")?;
    Ok(Carved {
        capacity: format!(
            "{slots} nonces in flight, {cached} credentials cached, failures of {} sources and users",
            crate::modules::auth::throttle::ENTRIES
        ),
        shm: Box::new(AuthShm {
            counts,
            secret: crate::server::secret(),
            cache,
            sha256_column,
            throttle_counts,
        }),
    })
}

pub fn start<'a>(s: &Start<'a>) -> Box<dyn Runtime + 'a> {
    let shm = s
        .shm
        .and_then(|m| m.downcast_ref::<AuthShm>())
        .expect("auth's carve made its tables");
    Box::new(AuthState::new(s.config, shm))
}
