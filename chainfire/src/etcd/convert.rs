//! etcd protobuf ↔ chainfire's domain types. Requests are validated here, on receipt, with
//! etcd's error for each problem; nothing past this file sees a generated type.

use std::collections::HashSet;

use photon_api::etcd::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare as PbCompare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp, TxnRequest,
    TxnResponse,
};
use photon_api::etcd::mvccpb;

use crate::error::ChainfireError;
use crate::mvcc::model::*;

fn invalid(message: impl Into<String>) -> ChainfireError {
    ChainfireError::InvalidArgument(message.into())
}

fn key_range(key: Vec<u8>, end: Vec<u8>) -> Result<KeyRange, ChainfireError> {
    if key.is_empty() {
        return Err(ChainfireError::EmptyKey);
    }
    Ok(KeyRange { key, end })
}

pub fn range(r: RangeRequest) -> Result<Range, ChainfireError> {
    let sort_order = match range_request::SortOrder::try_from(r.sort_order) {
        Ok(range_request::SortOrder::None) => SortOrder::None,
        Ok(range_request::SortOrder::Ascend) => SortOrder::Ascend,
        Ok(range_request::SortOrder::Descend) => SortOrder::Descend,
        Err(_) => return Err(invalid(format!("etcdserver: invalid sort_order {}", r.sort_order))),
    };
    let sort_target = match range_request::SortTarget::try_from(r.sort_target) {
        Ok(range_request::SortTarget::Key) => SortTarget::Key,
        Ok(range_request::SortTarget::Version) => SortTarget::Version,
        Ok(range_request::SortTarget::Create) => SortTarget::Create,
        Ok(range_request::SortTarget::Mod) => SortTarget::Mod,
        Ok(range_request::SortTarget::Value) => SortTarget::Value,
        Err(_) => return Err(invalid(format!("etcdserver: invalid sort_target {}", r.sort_target))),
    };
    Ok(Range {
        range: key_range(r.key, r.range_end)?,
        limit: r.limit.max(0),
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

pub fn put(r: PutRequest) -> Result<Put, ChainfireError> {
    if r.key.is_empty() {
        return Err(ChainfireError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(invalid("etcdserver: value is provided"));
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(invalid("etcdserver: lease is provided"));
    }
    Ok(Put {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    })
}

pub fn delete(r: DeleteRangeRequest) -> Result<DeleteRange, ChainfireError> {
    Ok(DeleteRange { range: key_range(r.key, r.range_end)?, prev_kv: r.prev_kv })
}

fn compare_of(c: PbCompare) -> Result<Compare, ChainfireError> {
    let op = match compare::CompareResult::try_from(c.result) {
        Ok(compare::CompareResult::Equal) => CompareOp::Equal,
        Ok(compare::CompareResult::Greater) => CompareOp::Greater,
        Ok(compare::CompareResult::Less) => CompareOp::Less,
        Ok(compare::CompareResult::NotEqual) => CompareOp::NotEqual,
        Err(_) => return Err(invalid(format!("etcdserver: invalid compare result {}", c.result))),
    };
    use compare::TargetUnion as U;
    let number = |u: &Option<U>| match u {
        Some(U::Version(v) | U::CreateRevision(v) | U::ModRevision(v) | U::Lease(v)) => *v,
        _ => 0,
    };
    let target = match compare::CompareTarget::try_from(c.target) {
        Ok(compare::CompareTarget::Version) => CompareTarget::Version(number(&c.target_union)),
        Ok(compare::CompareTarget::Create) => CompareTarget::Create(number(&c.target_union)),
        Ok(compare::CompareTarget::Mod) => CompareTarget::Mod(number(&c.target_union)),
        Ok(compare::CompareTarget::Lease) => CompareTarget::Lease(number(&c.target_union)),
        Ok(compare::CompareTarget::Value) => match c.target_union {
            Some(U::Value(v)) => CompareTarget::Value(v),
            _ => CompareTarget::Value(Vec::new()),
        },
        Err(_) => return Err(invalid(format!("etcdserver: invalid compare target {}", c.target))),
    };
    Ok(Compare { range: key_range(c.key, c.range_end)?, op, target })
}

fn op_of(op: RequestOp, max_ops: usize) -> Result<Op, ChainfireError> {
    match op.request {
        Some(request_op::Request::RequestRange(r)) => Ok(Op::Range(range(r)?)),
        Some(request_op::Request::RequestPut(r)) => Ok(Op::Put(put(r)?)),
        Some(request_op::Request::RequestDeleteRange(r)) => Ok(Op::DeleteRange(delete(r)?)),
        Some(request_op::Request::RequestTxn(r)) => Ok(Op::Txn(txn(r, max_ops)?)),
        None => Err(invalid("etcdserver: request_op has no request")),
    }
}

pub fn txn(r: TxnRequest, max_ops: usize) -> Result<Txn, ChainfireError> {
    if r.compare.len() > max_ops || r.success.len() > max_ops || r.failure.len() > max_ops {
        return Err(ChainfireError::TooManyOps);
    }
    let txn = Txn {
        compare: r.compare.into_iter().map(compare_of).collect::<Result<_, _>>()?,
        success: r.success.into_iter().map(|op| op_of(op, max_ops)).collect::<Result<_, _>>()?,
        failure: r.failure.into_iter().map(|op| op_of(op, max_ops)).collect::<Result<_, _>>()?,
    };
    for branch in [&txn.success, &txn.failure] {
        check_no_duplicate_writes(branch)?;
    }
    Ok(txn)
}

/// etcd refuses a branch that writes one key twice, or puts a key it also deletes.
fn check_no_duplicate_writes(ops: &[Op]) -> Result<(), ChainfireError> {
    let mut puts: HashSet<&[u8]> = HashSet::new();
    let mut deletes: Vec<&KeyRange> = Vec::new();
    fn collect<'a>(
        ops: &'a [Op],
        puts: &mut HashSet<&'a [u8]>,
        deletes: &mut Vec<&'a KeyRange>,
    ) -> Result<(), ChainfireError> {
        for op in ops {
            match op {
                Op::Put(p) => {
                    if !puts.insert(&p.key) {
                        return Err(MvccError::DuplicateKey.into());
                    }
                }
                Op::DeleteRange(d) => deletes.push(&d.range),
                Op::Txn(t) => {
                    // Either nested branch may run; each must fit with this branch's writes.
                    for branch in [&t.success, &t.failure] {
                        let mut nested_puts = puts.clone();
                        let mut nested_deletes = deletes.clone();
                        collect(branch, &mut nested_puts, &mut nested_deletes)?;
                    }
                }
                Op::Range(_) => {}
            }
        }
        Ok(())
    }
    collect(ops, &mut puts, &mut deletes)?;
    if puts.iter().any(|key| deletes.iter().any(|range| range.contains(key))) {
        return Err(MvccError::DuplicateKey.into());
    }
    Ok(())
}

pub fn kv(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

pub fn range_response(header: ResponseHeader, r: RangeResult) -> RangeResponse {
    RangeResponse { header: Some(header), kvs: r.kvs.into_iter().map(kv).collect(), more: r.more, count: r.count }
}

pub fn put_response(header: ResponseHeader, prev: Option<KeyValue>) -> PutResponse {
    PutResponse { header: Some(header), prev_kv: prev.map(kv) }
}

pub fn delete_response(header: ResponseHeader, deleted: i64, prevs: Vec<KeyValue>) -> DeleteRangeResponse {
    DeleteRangeResponse { header: Some(header), deleted, prev_kvs: prevs.into_iter().map(kv).collect() }
}

pub fn txn_response(header: ResponseHeader, succeeded: bool, results: Vec<OpResult>) -> TxnResponse {
    let responses = results.into_iter().map(|r| op_response(header, r)).collect();
    TxnResponse { header: Some(header), succeeded, responses }
}

fn op_response(header: ResponseHeader, result: OpResult) -> ResponseOp {
    use response_op::Response as R;
    let response = match result {
        OpResult::Range(r) => R::ResponseRange(range_response(header, r)),
        OpResult::Put { prev } => R::ResponsePut(put_response(header, prev)),
        OpResult::DeleteRange { deleted, prevs } => R::ResponseDeleteRange(delete_response(header, deleted, prevs)),
        OpResult::Txn { succeeded, results } => R::ResponseTxn(txn_response(header, succeeded, results)),
    };
    ResponseOp { response: Some(response) }
}
