//! Redis as a store (issue 22: usrloc's location table shared by several
//! nodes): `redis://[[user]:password@]host[:port][/N]`, or several
//! `host:port` seeds separated by commas for a Redis Cluster. The URL is
//! parsed as pure code with its password masked wherever it is shown; a
//! connection (one node or the cluster, the `redis` crate's) has every
//! wait bounded by the timeout.

use std::fmt;
use std::time::Duration;

/// A parsed Redis URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    /// One node, or a cluster's seed nodes.
    pub nodes: Vec<(String, u16)>,
    /// The logical database (one node only; a cluster has just 0).
    pub db: u32,
}

impl RedisUrl {
    /// Whether `url` names Redis (the scheme alone).
    pub fn is_redis(url: &str) -> bool {
        url.get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("redis://"))
    }

    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        let bad = |e: &str| format!("db_url {}: {e}", super::url::Masked(url));
        if !RedisUrl::is_redis(url) {
            return Err(bad("not redis://..."));
        }
        let rest = &url[8..];
        let (creds, rest) = match rest.rsplit_once('@') {
            Some((c, r)) => (Some(c), r),
            None => (None, rest),
        };
        let (user, password) = match creds {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some((u, p)) => ((!u.is_empty()).then(|| u.to_string()), Some(p.to_string())),
                None => (Some(c.to_string()), None),
            },
        };
        let (hosts, db) = match rest.split_once('/') {
            Some((h, "")) => (h, 0),
            Some((h, d)) => (
                h,
                d.parse::<u32>()
                    .map_err(|_| bad(&format!("'{d}' is not a database number")))?,
            ),
            None => (rest, 0),
        };
        let nodes = hosts
            .split(',')
            .map(|h| {
                let h = h.trim();
                // An IPv6 address in brackets: `[::1]:6379`.
                let (host, port) = match h.rsplit_once(':') {
                    Some((host, p)) => (
                        host,
                        p.parse::<u16>()
                            .map_err(|_| bad(&format!("'{p}' is not a port")))?,
                    ),
                    None => (h, 6379),
                };
                let host = host.trim_start_matches('[').trim_end_matches(']');
                if host.is_empty() {
                    return Err(bad("a node with no host"));
                }
                Ok((host.to_string(), port))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.len() > 1 && db != 0 {
            return Err(bad("a Redis Cluster has database 0 only"));
        }
        Ok(RedisUrl {
            user,
            password,
            nodes,
            db,
        })
    }

    pub fn is_cluster(&self) -> bool {
        self.nodes.len() > 1
    }

    /// A node's connection info for the client crate.
    fn info(&self, (host, port): &(String, u16)) -> redis::ConnectionInfo {
        let mut redis = redis::RedisConnectionInfo::default().set_db(i64::from(self.db));
        if let Some(u) = &self.user {
            redis = redis.set_username(u.clone());
        }
        if let Some(p) = &self.password {
            redis = redis.set_password(p.clone());
        }
        use redis::IntoConnectionInfo as _;
        redis::ConnectionAddr::Tcp(host.clone(), *port)
            .into_connection_info()
            .map(|i| i.set_redis_settings(redis))
            .expect("a TCP address is connection info")
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            (Some(u), None) => write!(f, "{u}@")?,
            (None, None) => {}
        }
        for (i, (h, p)) in self.nodes.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            match h.contains(':') {
                true => write!(f, "{sep}[{h}]:{p}")?,
                false => write!(f, "{sep}{h}:{p}")?,
            }
        }
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One connection: to a node, or to the cluster (commands routed by
/// their key's slot).
pub enum RedisConn {
    Node(Box<redis::Connection>),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl RedisConn {
    /// Connects within `timeout`; every command after it is bounded by
    /// the same.
    pub fn open(url: &RedisUrl, timeout: Duration) -> Result<RedisConn, super::conn::DbError> {
        let fail = |e: &dyn fmt::Display| super::conn::DbError(format!("redis {url}: {e}"));
        if url.is_cluster() {
            let nodes: Vec<redis::ConnectionInfo> = url.nodes.iter().map(|n| url.info(n)).collect();
            let client = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()
                .map_err(|e| fail(&e))?;
            return client
                .get_connection()
                .map(|c| RedisConn::Cluster(Box::new(c)))
                .map_err(|e| fail(&e));
        }
        let client = redis::Client::open(url.info(&url.nodes[0])).map_err(|e| fail(&e))?;
        let c = client
            .get_connection_with_timeout(timeout)
            .map_err(|e| fail(&e))?;
        c.set_read_timeout(Some(timeout)).map_err(|e| fail(&e))?;
        c.set_write_timeout(Some(timeout)).map_err(|e| fail(&e))?;
        Ok(RedisConn::Node(Box::new(c)))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Runs one command; its reply.
    pub fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        match self {
            RedisConn::Node(c) => cmd.query(c.as_mut()),
            RedisConn::Cluster(c) => cmd.query(c.as_mut()),
        }
    }

    /// Runs commands in one pipeline (on a cluster, each on its key's
    /// node); their replies in order.
    pub fn pipeline<T: redis::FromRedisValue>(
        &mut self,
        cmds: Vec<redis::Cmd>,
    ) -> redis::RedisResult<T> {
        match self {
            RedisConn::Node(c) => {
                let mut p = redis::pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c.as_mut())
            }
            RedisConn::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c.as_mut())
            }
        }
    }

    /// Runs a script by its digest, loading it first if the server lost
    /// it (the `redis` crate's EVALSHA, then EVAL on NOSCRIPT).
    pub fn script<T: redis::FromRedisValue>(
        &mut self,
        script: &redis::Script,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> redis::RedisResult<T> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        match self {
            RedisConn::Node(c) => inv.invoke(c.as_mut()),
            RedisConn::Cluster(c) => inv.invoke(c.as_mut()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_a_node_and_a_cluster_show_no_password() {
        let u = RedisUrl::parse("redis://:s3cret@10.0.0.1:6380/2").unwrap();
        assert_eq!(u.nodes, [("10.0.0.1".to_string(), 6380)]);
        assert_eq!(
            (u.db, u.password.as_deref(), u.user.as_deref()),
            (2, Some("s3cret"), None)
        );
        assert_eq!(u.to_string(), "redis://:***@10.0.0.1:6380/2");
        assert!(!format!("{u:?}").contains("s3cret"));
        let c = RedisUrl::parse("redis://a:7000,b:7001, c:7002").unwrap();
        assert!(c.is_cluster());
        assert_eq!(c.to_string(), "redis://a:7000,b:7001,c:7002");
        assert_eq!(
            RedisUrl::parse("redis://h").unwrap().nodes,
            [("h".into(), 6379)]
        );
        for bad in [
            "redis://:s3cret@h:99999",
            "redis://:s3cret@a:1,b:2/3",
            "redis://:s3cret@h/x",
            "mysql://u:s3cret@h/db",
            "redis://:s3cret@:1",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err();
            assert!(!e.contains("s3cret"), "{bad}: {e}");
        }
    }
}
