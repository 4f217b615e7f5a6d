// People's pages in a real browser: Debian's Chromium driven by playwright-core, with
// `otpauth` (npm) standing in for the person's authenticator app.
//
// Environment: AUTHORITY_URL, INVITE_ANN and INVITE_BOB (links from `warden user invite`),
// SHOTS (a directory for each page's screenshot). Prints `ok NAME` or `FAIL NAME: why` per
// check, and exits non-zero if any failed.
import { chromium } from 'playwright-core'
import * as OTPAuth from 'otpauth'

const { AUTHORITY_URL, INVITE_ANN, INVITE_BOB, SHOTS } = process.env
let failures = 0
const state = {}

function expect(cond, msg) {
  if (!cond) throw new Error(msg)
}

async function check(name, fn, needs) {
  try {
    if (needs && !(needs in state)) throw new Error(`no ${needs} (an earlier check failed)`)
    await fn()
    console.log(`ok ${name}`)
  } catch (e) {
    failures++
    console.log(`FAIL ${name}: ${e?.message}`)
  }
}

/// The app's code at `offset` steps from now: +1 is the next step, which the authority
/// accepts (one step of skew) and which comes after any code already used.
function code(key, offset = 0) {
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(key.replace(/ /g, '')), digits: 6, period: 30, algorithm: 'SHA1' })
  return totp.generate({ timestamp: Date.now() + offset * 30_000 })
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true })
}

async function signIn(page, name, key) {
  await page.goto(`${AUTHORITY_URL}/signin?tenant=acme`)
  await page.getByLabel('Your name').fill(name)
  await page.getByLabel('Code from your authenticator app').fill(code(key, 1))
  await page.getByRole('button', { name: 'Sign in' }).click()
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
try {
  const ann = await (await browser.newContext()).newPage()

  await check('the enrollment page runs no script, cannot be framed, and labels its field', async () => {
    const res = await ann.goto(INVITE_ANN)
    expect(res.status() === 200, `status ${res.status()}`)
    const csp = res.headers()['content-security-policy'] ?? ''
    expect(csp.includes("default-src 'none'") && csp.includes("frame-ancestors 'none'") && !csp.includes('script-src'), csp)
    expect((await ann.locator('script').count()) === 0, 'a script element')
    state.annKey = (await ann.locator('#secret').textContent()).trim()
    expect(/^[A-Z2-7 ]{32,}$/.test(state.annKey), state.annKey)
    expect((await ann.getByLabel('Code from your app').count()) === 1, 'no labelled code field')
    await shot(ann, 'enroll')
  })

  await check('a wrong code is refused in words and enrolls nothing', async () => {
    await ann.getByLabel('Code from your app').fill('000000')
    await ann.getByRole('button', { name: 'Finish setup' }).click()
    const alert = await ann.getByRole('alert').textContent()
    expect(alert.includes('That code is not right'), alert)
    await shot(ann, 'enroll-wrong-code')
  }, 'annKey')

  await check("the app's code enrolls the person and signs them in", async () => {
    await ann.getByLabel('Code from your app').fill(code(state.annKey))
    await ann.getByRole('button', { name: 'Finish setup' }).click()
    await ann.waitForURL('**/account')
    expect((await ann.getByRole('heading', { level: 1 }).textContent()) === 'ann', 'heading')
    const cookies = (await ann.context().cookies()).map((c) => `${c.name}:${c.httpOnly}:${c.secure}:${c.sameSite}`)
    expect(cookies.includes('__Host-warden_session:true:true:Lax'), cookies.join(' '))
    state.annIn = true
    await shot(ann, 'account')
  }, 'annKey')

  await check('the invitation works once', async () => {
    const res = await ann.goto(INVITE_ANN)
    expect(res.status() === 404, `status ${res.status()}`)
    expect((await ann.getByRole('heading', { level: 1 }).textContent()).includes('cannot be used'), 'heading')
    await shot(ann, 'invite-used')
  }, 'annIn')

  await check('sign out, then sign in with the next code', async () => {
    await ann.goto(`${AUTHORITY_URL}/account`)
    await ann.getByRole('button', { name: 'Sign out', exact: true }).click()
    expect((await ann.getByRole('heading', { level: 1 }).textContent()) === 'You are signed out', 'signed out')
    await shot(ann, 'signed-out')
    await ann.goto(`${AUTHORITY_URL}/account`)
    expect(ann.url().endsWith('/signin'), ann.url())
    await signIn(ann, 'ann', state.annKey)
    await ann.waitForURL('**/account')
  }, 'annIn')

  await check('whatever is wrong, sign-in says the same', async () => {
    const page = await (await browser.newContext()).newPage()
    const said = []
    for (const [org, name, c] of [['nowhere', 'ann', code(state.annKey, 1)], ['acme', 'nobody', '123456'], ['acme', 'ann', '123456']]) {
      await page.goto(`${AUTHORITY_URL}/signin`)
      await page.getByLabel('Organisation').fill(org)
      await page.getByLabel('Your name').fill(name)
      await page.getByLabel('Code from your authenticator app').fill(c)
      await page.getByRole('button', { name: 'Sign in' }).click()
      said.push(await page.getByRole('alert').textContent())
    }
    expect(new Set(said).size === 1, said.join(' | '))
    await shot(page, 'signin-refused')
  }, 'annKey')

  await check('a page on another site cannot post the sign-in form', async () => {
    const page = await (await browser.newContext()).newPage()
    await page.goto(`${AUTHORITY_URL}/signin`)
    // Even knowing this browser's form token, the attacker's page, on its own origin, fails.
    const token = await page.locator('input[name=csrf]').getAttribute('value')
    const attack = `<!doctype html><form method="post" action="${AUTHORITY_URL}/signin">
      <input name="csrf" value="${token}"><input name="tenant" value="acme"><input name="name" value="ann">
      <input name="code" value="${code(state.annKey, 1)}"><button>go</button></form>`
    await page.route('http://attacker.test/**', (route) => route.fulfill({ contentType: 'text/html', body: attack }))
    await page.goto('http://attacker.test/')
    const [res] = await Promise.all([page.waitForNavigation(), page.click('button')])
    expect(res.status() === 403, `status ${res.status()}`)
    expect((await page.content()).includes('another site'), 'the page says why')
    const cookies = (await page.context().cookies()).map((c) => c.name)
    expect(!cookies.includes('__Host-warden_session'), cookies.join(' '))
    await shot(page, 'forged-post')
  }, 'annKey')

  await check('from one session, the person signs another out', async () => {
    const phone = await (await browser.newContext()).newPage()
    await phone.goto(INVITE_BOB)
    const key = (await phone.locator('#secret').textContent()).trim()
    await phone.getByLabel('Code from your app').fill(code(key))
    await phone.getByRole('button', { name: 'Finish setup' }).click()
    await phone.waitForURL('**/account')
    const laptop = await (await browser.newContext()).newPage()
    await signIn(laptop, 'bob', key)
    await laptop.waitForURL('**/account')
    await phone.reload()
    const rows = phone.locator('tbody tr')
    expect((await rows.count()) === 2, `${await rows.count()} sessions listed`)
    await shot(phone, 'account-two-sessions')
    await phone.locator('tbody tr').filter({ has: phone.getByRole('button') }).getByRole('button').click()
    await phone.waitForURL('**/account')
    expect((await phone.locator('tbody tr').count()) === 1, 'one session left')
    await laptop.goto(`${AUTHORITY_URL}/account`)
    expect(laptop.url().endsWith('/signin'), `the laptop is at ${laptop.url()}`)
  })
} finally {
  await browser.close()
}
process.exit(failures === 0 ? 0 : 1)
