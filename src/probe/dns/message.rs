//! DNS messages on the wire: builds a query and parses and validates a response
//! against the query it claims to answer. Pure functions on bytes; no metrics.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// How a server answered, as the `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Rcode {
    NoError,
    NxDomain,
    ServFail,
    Refused,
    /// FORMERR, NOTIMP and every other code: an answer, but a bad one.
    Other,
}

impl Rcode {
    fn of(code: ResponseCode) -> Self {
        match code {
            ResponseCode::NoError => Rcode::NoError,
            ResponseCode::NXDomain => Rcode::NxDomain,
            ResponseCode::ServFail => Rcode::ServFail,
            ResponseCode::Refused => Rcode::Refused,
            _ => Rcode::Other,
        }
    }
}

/// What the prober and the stub emulation need from a valid response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    pub rcode: Rcode,
    pub answers: u16,
    pub truncated: bool,
    /// glibc treats NOERROR without answers, AA, RA or additionals as a referral.
    pub referral: bool,
}

/// Why bytes are not the response to our query. Resolvers ignore such datagrams
/// and keep waiting; so do we.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResponseError {
    #[error("not a DNS message: {0}")]
    Malformed(String),
    #[error("a query, not a response")]
    NotAResponse,
    #[error("answers id {got}, expected {want}")]
    WrongId { got: u16, want: u16 },
    #[error("answers another question")]
    WrongQuestion,
}

/// A recursive query for `name`/`qtype` with id `id`, encoded.
pub(crate) fn build_query(id: u16, name: &Name, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(id)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), qtype));
    // Encoding a message with one valid name and no records cannot fail.
    m.to_vec().unwrap_or_default()
}

/// The id of a response, if the bytes are long enough to have one.
pub(crate) fn response_id(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Parses `bytes` as the response to query `id` for `name`/`qtype`.
pub(crate) fn parse_response(
    bytes: &[u8],
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Result<Answer, ResponseError> {
    let m = Message::from_vec(bytes).map_err(|e| ResponseError::Malformed(e.to_string()))?;
    if m.message_type() != MessageType::Response {
        return Err(ResponseError::NotAResponse);
    }
    if m.id() != id {
        return Err(ResponseError::WrongId {
            got: m.id(),
            want: id,
        });
    }
    let rcode = Rcode::of(m.response_code());
    // FORMERR and friends may come without a question section; everything else
    // must echo ours (names compare case-insensitively, as 0x20 randomisation
    // would need). `name` is absolute, as every name we send is.
    let question_ok = match m.queries() {
        [q] => q.query_type() == qtype && q.name() == name,
        [] => rcode == Rcode::Other,
        _ => false,
    };
    if !question_ok {
        return Err(ResponseError::WrongQuestion);
    }
    let answers = u16::try_from(m.answers().len()).unwrap_or(u16::MAX);
    Ok(Answer {
        rcode,
        answers,
        truncated: m.truncated(),
        referral: rcode == Rcode::NoError
            && answers == 0
            && !m.authoritative()
            && !m.recursion_available()
            && m.additionals().is_empty()
            && m.extensions().is_none(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn response(id: u16, qname: &str, qtype: RecordType, code: ResponseCode) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_message_type(MessageType::Response)
            .set_recursion_available(true)
            .set_response_code(code)
            .add_query(Query::query(name(qname), qtype));
        m.to_vec().unwrap()
    }

    #[test]
    fn query_round_trips() {
        let q = build_query(7, &name("a.example."), RecordType::AAAA);
        let m = Message::from_vec(&q).unwrap();
        assert_eq!(m.id(), 7);
        assert!(m.recursion_desired());
        assert_eq!(m.queries()[0].query_type(), RecordType::AAAA);
        assert_eq!(response_id(&q), Some(7));
    }

    #[test]
    fn rcodes_are_classified() {
        for (code, want) in [
            (ResponseCode::NoError, Rcode::NoError),
            (ResponseCode::NXDomain, Rcode::NxDomain),
            (ResponseCode::ServFail, Rcode::ServFail),
            (ResponseCode::Refused, Rcode::Refused),
            (ResponseCode::NotImp, Rcode::Other),
        ] {
            let r = response(1, "a.example.", RecordType::A, code);
            let a = parse_response(&r, 1, &name("a.example."), RecordType::A).unwrap();
            assert_eq!(a.rcode, want);
            assert!(!a.referral);
        }
    }

    #[test]
    fn mismatches_are_rejected() {
        let r = response(1, "a.example.", RecordType::A, ResponseCode::NoError);
        let n = name("a.example.");
        assert!(matches!(
            parse_response(&r, 2, &n, RecordType::A),
            Err(ResponseError::WrongId { got: 1, want: 2 })
        ));
        assert_eq!(
            parse_response(&r, 1, &n, RecordType::AAAA),
            Err(ResponseError::WrongQuestion)
        );
        assert_eq!(
            parse_response(&r, 1, &name("b.example."), RecordType::A),
            Err(ResponseError::WrongQuestion)
        );
        let upper = response(1, "A.EXAMPLE.", RecordType::A, ResponseCode::NoError);
        assert!(parse_response(&upper, 1, &n, RecordType::A).is_ok());
        let q = build_query(1, &n, RecordType::A);
        assert_eq!(
            parse_response(&q, 1, &n, RecordType::A),
            Err(ResponseError::NotAResponse)
        );
        assert!(matches!(
            parse_response(&[0, 1, 2], 1, &n, RecordType::A),
            Err(ResponseError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_response(&bytes, 1, &name("a.example."), RecordType::A);
            let _ = response_id(&bytes);
        }

        #[test]
        fn mutated_responses_never_panic(
            flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8)
        ) {
            let mut r = response(9, "a.example.", RecordType::A, ResponseCode::NoError);
            for (i, b) in flips {
                let n = r.len();
                r[i % n] = b;
            }
            let _ = parse_response(&r, 9, &name("a.example."), RecordType::A);
        }
    }
}
