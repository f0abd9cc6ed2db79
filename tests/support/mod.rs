#![allow(dead_code)]

pub mod pg_cluster;
