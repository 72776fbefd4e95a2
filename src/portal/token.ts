import { randomBytes } from 'node:crypto';

/**
 * Portal session token: `mf_portal_` and 32 base64url characters (192 random bits). The prefix
 * tells it apart from an API key (`mf_live_…`/`mf_test_…`) before any lookup, and lets secret
 * scanners and people recognise a leaked one.
 */
export const PORTAL_TOKEN_PREFIX = 'mf_portal_';
const TOKEN_SHAPE = /^mf_portal_[A-Za-z0-9_-]{32}$/;

export const generatePortalToken = (): string => PORTAL_TOKEN_PREFIX + randomBytes(24).toString('base64url');

export const isPortalTokenShaped = (candidate: string): boolean => TOKEN_SHAPE.test(candidate);
