//! Reading a small multipart form (the keystore upload) into memory, with a hard size limit.

use std::collections::HashMap;

use futures_util::StreamExt;

crate::refusal!(
    /// Why a multipart upload could not be read.
    UploadRefused
);

/// All fields (files and text) by name; refused when the total exceeds `limit` bytes, a field repeats, or
/// there are more than 8 fields.
pub async fn read_fields(
    mut payload: actix_multipart::Multipart,
    limit: usize,
) -> Result<HashMap<String, Vec<u8>>, UploadRefused> {
    let mut out = HashMap::new();
    let mut total = 0usize;
    while let Some(field) = payload.next().await {
        let mut field = field.map_err(|e| UploadRefused(format!("unreadable upload: {e}")))?;
        let name = field
            .content_disposition()
            .and_then(|d| d.get_name())
            .map(str::to_string)
            .ok_or("unreadable upload: a field has no name")?;
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| UploadRefused(format!("unreadable upload: {e}")))?;
            total += chunk.len();
            if total > limit {
                return Err(UploadRefused(format!(
                    "the upload is larger than {} KiB",
                    limit / 1024
                )));
            }
            data.extend_from_slice(&chunk);
        }
        if out.insert(name.clone(), data).is_some() || out.len() > 8 {
            return Err(UploadRefused(format!("unexpected field `{name}`")));
        }
    }
    Ok(out)
}
