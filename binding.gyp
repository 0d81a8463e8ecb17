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
      "target_name": "portcullis_notify",
      "sources": ["native/notify.c"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"],
      "conditions": [["OS!='linux'", { "type": "none", "sources": [] }]]
    }
  ]
}
