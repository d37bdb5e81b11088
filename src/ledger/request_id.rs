//! Request ids stored in 16 bytes.
//!
//! The gateway's ids are `req_` + 32 lowercase hex digits (`crate::ids`): 128 bits, stored as
//! their 16 bytes (a PostgreSQL `uuid`, which needs no length header, so the records' unique
//! index stays at 40 bytes per entry). An id of any other shape (from an imported log, an
//! older version) is stored in full beside a 16-byte digest of it, so it round-trips exactly
//! and still takes part in the same uniqueness (a digest colliding with another id has
//! probability 2⁻¹²⁸).

use sha2::{Digest, Sha256};

const PREFIX: &str = "req_";

/// A request id as the stores keep it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackedId {
    /// The id's 128 bits, or the first 16 bytes of the SHA-256 of a foreign id.
    pub bytes: [u8; 16],
    /// A foreign id in full (`None` for the gateway's own ids).
    pub foreign: Option<String>,
}

impl PackedId {
    pub fn pack(id: &str) -> Self {
        match gateway_bits(id) {
            Some(bytes) => Self {
                bytes,
                foreign: None,
            },
            None => {
                let digest = Sha256::digest(id.as_bytes());
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&digest[..16]);
                Self {
                    bytes,
                    foreign: Some(id.to_string()),
                }
            }
        }
    }

    /// The id as it was given to [`Self::pack`].
    pub fn unpack(&self) -> String {
        match &self.foreign {
            Some(id) => id.clone(),
            None => format!("{PREFIX}{}", hex::encode(self.bytes)),
        }
    }
}

/// The 16 bytes of a gateway id: `req_` and exactly 32 lowercase hex digits (uppercase
/// would not come back the same, so such an id is foreign).
fn gateway_bits(id: &str) -> Option<[u8; 16]> {
    let digits = id.strip_prefix(PREFIX)?;
    if digits.len() != 32
        || !digits
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return None;
    }
    let mut bytes = [0u8; 16];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_ids_pack_into_their_16_bytes() {
        let id = "req_00112233445566778899aabbccddeeff";
        let packed = PackedId::pack(id);
        assert_eq!(packed.foreign, None);
        assert_eq!(packed.bytes[0], 0x00);
        assert_eq!(packed.bytes[15], 0xff);
        assert_eq!(packed.unpack(), id);
        let fresh = format!("req_{}", crate::ids::random_hex());
        assert_eq!(PackedId::pack(&fresh).unpack(), fresh);
    }

    #[test]
    fn other_shapes_round_trip_through_their_text() {
        for id in [
            "",
            "req_",
            "req_00112233445566778899AABBCCDDEEFF",
            "req_00112233445566778899aabbccddeef",
            "req_00112233445566778899aabbccddeeff0",
            "chatcmpl-123",
            "req_zz112233445566778899aabbccddeeff",
            "réq_☃",
        ] {
            let packed = PackedId::pack(id);
            assert!(packed.foreign.is_some(), "{id}");
            assert_eq!(packed.unpack(), id);
        }
    }

    #[test]
    fn distinct_ids_pack_differently() {
        let a = PackedId::pack("import-1");
        let b = PackedId::pack("import-2");
        assert_ne!(a.bytes, b.bytes);
        assert_eq!(a, PackedId::pack("import-1"));
    }
}
