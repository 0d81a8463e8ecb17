{
  "targets": [
    {
      "target_name": "portcullis_relay",
      "sources": ["native/relay.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    },
    {
      "target_name": "portcullis_cef",
      "sources": ["native/cef.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    },
    {
      "target_name": "portcullis_json",
      "sources": ["native/json.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    },
    {
      "target_name": "libdeflate",
      "type": "static_library",
      "sources": [
        "native/vendor/libdeflate/lib/deflate_compress.c",
        "native/vendor/libdeflate/lib/gzip_compress.c",
        "native/vendor/libdeflate/lib/deflate_decompress.c",
        "native/vendor/libdeflate/lib/gzip_decompress.c",
        "native/vendor/libdeflate/lib/crc32.c",
        "native/vendor/libdeflate/lib/utils.c",
        "native/vendor/libdeflate/lib/x86/cpu_features.c",
        "native/vendor/libdeflate/lib/arm/cpu_features.c"
      ],
      "cflags": ["-O2", "-std=gnu11", "-fPIC", "-Wall", "-Wno-sign-compare", "-Wno-unused-parameter"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    },
    {
      "target_name": "portcullis_deflate",
      "sources": ["native/deflate.c"],
      "dependencies": ["libdeflate"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    },
    {
      "target_name": "portcullis_notify",
      "sources": ["native/notify.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    }
  ]
}
