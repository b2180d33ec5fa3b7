//! MQTT CONNECT packets, as HAProxy's `mqtt_field_value(connect,
//! client_identifier)` and `mqtt_is_valid` converters read them: the
//! first packet a client sends (MQTT 3.1, 3.1.1 and 5.0), from the start
//! of the buffered bytes. Pure and bounded: never reads past the buffer,
//! never panics on hostile input.

/// Why no value came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttError {
    /// More bytes are needed (HAProxy: the sample may change).
    Incomplete,
    /// Not a valid CONNECT packet.
    Invalid,
}

/// A variable byte integer (remaining length, v5 property length):
/// (value, bytes used).
fn varint(b: &[u8]) -> Result<(usize, usize), MqttError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = b.get(i) else {
            return Err(MqttError::Incomplete);
        };
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(MqttError::Invalid)
}

/// A two-byte length and that many bytes.
fn string(b: &[u8]) -> Result<(&[u8], usize), MqttError> {
    let len = usize::from(u16::from_be_bytes([
        *b.first().ok_or(MqttError::Invalid)?,
        *b.get(1).ok_or(MqttError::Invalid)?,
    ]));
    let s = b.get(2..2 + len).ok_or(MqttError::Invalid)?;
    Ok((s, 2 + len))
}

/// The client identifier of the CONNECT packet at the start of `buf`
/// (possibly empty: MQTT allows it).
pub fn connect_client_id(buf: &[u8]) -> Result<&[u8], MqttError> {
    let Some(&first) = buf.first() else {
        return Err(MqttError::Incomplete);
    };
    // Packet type 1 (CONNECT), flags 0.
    if first != 0x10 {
        return Err(MqttError::Invalid);
    }
    let (remaining, used) = varint(&buf[1..])?;
    let start = 1 + used;
    let Some(packet) = buf.get(start..start + remaining) else {
        return Err(MqttError::Incomplete);
    };
    // Variable header: protocol name, level, flags, keep alive.
    let (name, mut at) = string(packet)?;
    let level = *packet.get(at).ok_or(MqttError::Invalid)?;
    match (name, level) {
        (b"MQTT", 4 | 5) | (b"MQIsdp", 3) => {}
        _ => return Err(MqttError::Invalid),
    }
    let flags = *packet.get(at + 1).ok_or(MqttError::Invalid)?;
    if flags & 0x01 != 0 {
        // The reserved flag must be 0.
        return Err(MqttError::Invalid);
    }
    at += 4;
    if level == 5 {
        let (props, used) =
            varint(packet.get(at..).ok_or(MqttError::Invalid)?).map_err(|_| MqttError::Invalid)?;
        at += used + props;
    }
    let (id, _) = string(packet.get(at..).ok_or(MqttError::Invalid)?)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CONNECT packet for `level` with client id `id`.
    fn connect(level: u8, id: &str) -> Vec<u8> {
        let mut body = Vec::new();
        let name: &[u8] = if level == 3 { b"MQIsdp" } else { b"MQTT" };
        body.extend((name.len() as u16).to_be_bytes());
        body.extend(name);
        body.extend([level, 0x02, 0x00, 0x3c]);
        if level == 5 {
            // Properties: session expiry interval (0x11) = 0.
            body.extend([5, 0x11, 0, 0, 0, 0]);
        }
        body.extend((id.len() as u16).to_be_bytes());
        body.extend(id.as_bytes());
        let mut p = vec![0x10, body.len() as u8];
        p.extend(body);
        p
    }

    #[test]
    fn client_ids_of_every_version() {
        for level in [3, 4, 5] {
            let p = connect(level, "sensor-42");
            assert_eq!(
                connect_client_id(&p),
                Ok(&b"sensor-42"[..]),
                "level {level}"
            );
            // Trailing bytes (the next packet) do not matter.
            let mut more = p.clone();
            more.extend([0xc0, 0x00]);
            assert_eq!(connect_client_id(&more), Ok(&b"sensor-42"[..]));
            for cut in 0..p.len() {
                assert_eq!(
                    connect_client_id(&p[..cut]),
                    Err(MqttError::Incomplete),
                    "level {level}, {cut} bytes"
                );
            }
        }
        assert_eq!(connect_client_id(&connect(4, "")), Ok(&b""[..]));
    }

    #[test]
    fn other_bytes_are_invalid() {
        assert_eq!(
            connect_client_id(b"GET / HTTP/1.1\r\n"),
            Err(MqttError::Invalid)
        );
        let mut wrong_level = connect(4, "x");
        wrong_level[8] = 9;
        assert_eq!(connect_client_id(&wrong_level), Err(MqttError::Invalid));
        // A remaining length longer than four bytes.
        assert_eq!(
            connect_client_id(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(MqttError::Invalid)
        );
        // A client id longer than the packet.
        let mut long = connect(4, "abc");
        let n = long.len();
        long[n - 4] = 0x10;
        assert_eq!(connect_client_id(&long), Err(MqttError::Invalid));
    }
}
