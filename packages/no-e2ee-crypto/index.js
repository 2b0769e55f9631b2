'use strict';
// matrix-scim-bridge never encrypts: it provisions accounts and posts notices to an
// unencrypted admin room. The real package downloads a native binary from outside the npm
// registry at install time, so it is replaced by this one (see "overrides" in the
// project's package.json). The bot SDK loads it at start-up; every name it refers to
// exists here, and any attempt to use one fails loudly instead of silently.
const UNSUPPORTED = 'end-to-end encryption is not supported by matrix-scim-bridge';

function unsupported(name) {
  const fail = function () {
    throw new Error(`${name}: ${UNSUPPORTED}`);
  };
  Object.defineProperty(fail, 'name', { value: name });
  return new Proxy(fail, {
    construct: fail,
    get(target, prop) {
      if (prop === 'name' || prop === 'prototype' || typeof prop === 'symbol') {
        return Reflect.get(target, prop);
      }
      return fail;
    },
  });
}

for (const name of [
  'Attachment',
  'DeviceId',
  'DeviceLists',
  'EncryptedAttachment',
  'EncryptionSettings',
  'OlmMachine',
  'RoomId',
  'UserId',
]) {
  module.exports[name] = unsupported(name);
}
