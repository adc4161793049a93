//! Digests signed with a key made for the test, as CloudTrail would sign them (tests only).

use super::digest::{DigestDoc, PublicKey, PublicKeys, data_to_sign, hex, sha256_hex};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};

pub struct Forge {
    pub pair: RsaKeyPair,
    /// The public key, as ListPublicKeys would give it.
    pub keys: PublicKeys,
    pub fingerprint: String,
}

pub fn forge() -> Forge {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let der = pair.public_key().as_ref().to_vec();
    let fingerprint = hex(&<md5::Md5 as md5::Digest>::digest(&der));
    let mut keys = PublicKeys::default();
    keys.insert(PublicKey::new(&der, &fingerprint, None, None).unwrap());
    Forge {
        pair,
        keys,
        fingerprint,
    }
}

impl Forge {
    /// The digest document's bytes, their SHA-256 and the hex signature over its data to sign.
    pub fn sign(&self, doc: &serde_json::Value) -> (Vec<u8>, String, String) {
        let bytes = doc.to_string().into_bytes();
        let parsed = DigestDoc::parse(&bytes).unwrap();
        let sha = sha256_hex(&bytes);
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                data_to_sign(&parsed, &sha).as_bytes(),
                &mut sig,
            )
            .unwrap();
        (bytes, sha, hex(&sig))
    }
}
