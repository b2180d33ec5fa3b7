//! HTTP Basic authentication against a `userlist` (the `http_auth` and
//! `http_auth_group` ACL fetches): `Authorization: Basic
//! base64(<user>:<password>)`, the user looked up, the password verified
//! (`insecure-password` compared in constant time; a crypt(3) hash
//! recomputed with the given password and compared in constant time).

use crate::admin::stats::{base64_decode, constant_time_eq};
use crate::config::userlist::{Password, User, UserlistRef};

use super::http1::head::RequestHead;

/// The user whose credentials the request carries, when they are right.
pub fn authenticated<'a>(r: &'a UserlistRef, head: Option<&RequestHead>) -> Option<&'a User> {
    let list = r.list.as_ref()?;
    let value = head?
        .headers
        .iter()
        .find(|h| h.is("authorization"))?
        .value
        .trim_ascii();
    let (scheme, encoded) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64_decode(encoded.trim_ascii())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (name, pass) = (&decoded[..colon], &decoded[colon + 1..]);
    let user = list.users.iter().find(|u| u.name.as_bytes() == name)?;
    verify(user.password.as_ref()?, pass).then_some(user)
}

fn verify(password: &Password, given: &[u8]) -> bool {
    match password {
        Password::Insecure(p) => constant_time_eq(p.as_bytes(), given),
        Password::Hash(h) => pwhash::unix::crypt(given, h)
            .is_ok_and(|computed| constant_time_eq(computed.as_bytes(), h.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::userlist::Userlist;
    use crate::proxy::http1::head::parse_request;

    /// Hashes made with `openssl passwd -6|-5|-1 -salt abcdefgh` (HAProxy
    /// 2.6 accepts each through the C library's crypt).
    const SHA512: &str = "$6$abcdefgh$xCmU6eXePqd8uT3.jYlk3Fgv/roflqiCi/twHrvHhPTT4qT0rTqu/3ZTFEf6uqFcl7eKyk81ngZEadU/ehEy51";

    fn list(password: Password) -> UserlistRef {
        UserlistRef {
            name: "L".into(),
            list: Some(Arc::new(Userlist {
                name: "L".into(),
                users: vec![User {
                    name: "alice".into(),
                    password: Some(password),
                    groups: vec!["admins".into()],
                }],
                groups: vec!["admins".into()],
            })),
        }
    }

    fn request(authorization: &str) -> RequestHead {
        let text = format!("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: {authorization}\r\n\r\n");
        parse_request(text.as_bytes(), 16384)
            .ok()
            .flatten()
            .map(|(h, _)| h)
            .unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn basic_credentials() {
        let hashed = list(Password::Hash(SHA512.into()));
        // base64("alice:secret6"), base64("alice:secret7"), base64("bob:secret6")
        let user =
            |v: &str, r: &UserlistRef| authenticated(r, Some(&request(v))).map(|u| u.name.clone());
        assert_eq!(
            user("Basic YWxpY2U6c2VjcmV0Ng==", &hashed),
            Some("alice".into())
        );
        assert_eq!(
            user("basic   YWxpY2U6c2VjcmV0Ng", &hashed),
            Some("alice".into())
        );
        assert_eq!(user("Basic YWxpY2U6c2VjcmV0Nw==", &hashed), None);
        assert_eq!(user("Basic Ym9iOnNlY3JldDY=", &hashed), None);
        assert_eq!(user("Bearer YWxpY2U6c2VjcmV0Ng==", &hashed), None);
        assert_eq!(user("Basic !!!", &hashed), None);
        // bcrypt from libxcrypt's crypt("secretb"); $2y$ and $2a$ name the
        // same algorithm.
        for variant in ["$2b$", "$2y$", "$2a$"] {
            let h = "$2b$04$E6/0FYFRhg5GHnp4ea6En.7kl4GVzTpWuLpDYWKVKxf.StRAIp8M."
                .replace("$2b$", variant);
            let bcrypt = list(Password::Hash(h));
            // base64("alice:secretb"), base64("alice:secretc")
            assert_eq!(
                user("Basic YWxpY2U6c2VjcmV0Yg==", &bcrypt),
                Some("alice".into()),
                "{variant}"
            );
            assert_eq!(
                user("Basic YWxpY2U6c2VjcmV0Yw==", &bcrypt),
                None,
                "{variant}"
            );
        }
        let plain = list(Password::Insecure("secret6".into()));
        assert_eq!(
            user("Basic YWxpY2U6c2VjcmV0Ng==", &plain),
            Some("alice".into())
        );
        assert_eq!(user("Basic YWxpY2U6c2VjcmV0", &plain), None);
    }
}
