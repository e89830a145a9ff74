# The customer portal in English. Keys must match ja/portal.ftl (a test checks both).

product-name = Kura Backup
footer-portal = Kura customer portal
skip-to-content = Skip to content
language-label = Language
language-apply = Apply
service-code = Service code
times-in-zone = Times are shown in { $zone }.
copy = Copy
rename = Rename
revoke = Revoke
logout = Sign out

## Navigation
nav-label = Main
nav-dashboard = Dashboard
nav-machines = Machines
nav-contract = Contract
nav-account = Account

## Roles
role-admin = Administrator
role-operator = Operator
role-restore-operator = Restore operator
role-auditor = Auditor

## Sign-in
login-title = Sign in
login-lead = Sign in with the login ID and password your administrator gave you.
field-login = Login ID
field-password = Password
field-totp = Code
login-submit = Sign in
login-forgot = Forgot your password?
totp-title = Two-factor authentication
totp-lead = Enter the one-time password your authenticator app shows for Kura.
totp-recovery-hint = Lost your device? Enter one of your recovery codes instead.
totp-submit = Verify
totp-start-over = Start again
back-to-login = Back to sign-in

## Password reissue
forgot-title = Reissue your password
forgot-lead = Enter your login ID. If it has an email address, we send a link to set a new password.
forgot-submit = Send the link
forgot-sent = If this login ID exists and has an email address, a link valid for 30 minutes has been sent to it. Check your mailbox.
forgot-no-mail = This service cannot send mail, so passwords cannot be reissued by mail. Ask your administrator to set a new password.
reset-title = Set a new password
reset-lead = Choose a new password. Your other sessions and API tokens stop working.
field-new-password = New password
field-confirm-password = New password (again)
field-old-password = Current password
password-policy = At least 12 characters; common passwords are refused.
password-mismatch = The two new passwords differ. Enter the same password twice.
reset-submit = Set the password
reset-done = Your password is set. Sign in with it.

## Refusals
refusal-wrong-credentials = The login ID or password is wrong, or the account is disabled. Check them, use "Forgot your password?", or ask your administrator.
refusal-wrong-code = The code is wrong or was already used. Enter the next code your app shows.
refusal-sign-in-expired = This sign-in took too long. Enter your password again.
refusal-throttled = Too many failed sign-ins. Try again after { $until }.
refusal-locked = Sign-in is locked after too many failures, until { $until }. Wait, or ask your administrator to unlock the account.
refusal-outside-admin-networks = Administrators of this tenant may sign in only from its allowed networks, and your address { $address } is not among them. Ask another administrator to add it.
refusal-tenant-suspended = This tenant's service is suspended. Contact your service provider.
refusal-tenant-terminated = This tenant's contract has ended.
refusal-session-ended = Your session has ended. Sign in again; a change you were making was not saved.
refusal-form-expired = The form had expired, so nothing was changed. Reload the page and try again.

## Errors
error-not-found = Not found
error-forbidden = Not allowed
error-unauthenticated = Not signed in
error-throttled = Too many attempts
error-invalid = Cannot do this
error-unavailable = Not available now
error-internal = Something went wrong on our side
error-no-such-page = There is no such page.
error-status = HTTP status { $status }
error-back = Back

## Dashboard
dashboard-title = Dashboard
usage-title = Storage used
usage-percent = { $percent }% of the quota
quota-warning = Storage use is at { $percent }% of your quota. Delete old snapshots or ask your provider for a larger plan before backups are refused.
machines-registered = machines registered (of the plan's limit)
machines-manage = Manage machines
dashboard-machines = Machines
dashboard-events = Recent events
events-none = No events yet.
col-name = Name
col-id = ID
col-registered = Registered
col-state = State
col-time = Time
col-action = Action
col-actor = By
col-target = Target
col-result = Result
col-actions = Actions
col-role = Role
col-source = From
col-started = Started
col-last-seen = Last active
col-created = Created
col-expires = Expires
col-last-used = Last used
state-active = Active
state-revoked = Revoked
state-ended = Ended
state-this-session = This session

## Machines
machines-title = Machines
machines-none = No machine is registered yet.
machines-add = Add a machine
machines-token-title = Register the new machine
machines-token-lead = Run this command on the new machine as the user that will run backups. The token works once, until { $until }.
machines-token-once = This token is shown only now. If it is lost or expires, add the machine again for a new one.
machines-ca-note = This service uses its own certificate authority: save its certificate next to the command first.
machines-new-name-for = New name for { $name }
machines-revoke-confirm = Revoke { $name }? Its agent stops working at once; its snapshots stay.

## Contract
contract-title = Contract
contract-plan = Plan
contract-tenant = Customer
contract-storage-quota = Storage quota
contract-machine-quota = Machines
contract-region = Data location (region)
contract-time-zone = Time zone
contract-since = Since
contract-options = Options
contract-encryption = Encryption
contract-encryption-required = Required: every vault is encrypted with your key
contract-encryption-optional = Optional
contract-immutability = Deletion lock
contract-days = { $days } days
contract-none = None
contract-private-gateway = Agent networks (private gateway)
contract-anywhere = Any network
split-title = Who is responsible for what
split-lead = The provider runs the service; you decide what is backed up and who may see it.
split-area = Area
split-provider = Provider
split-customer = Customer
split-infra = Service and storage
split-infra-provider = Runs, monitors, patches and backs up the service; keeps storage available and its data intact.
split-infra-customer = Keeps the protected servers and their agents running and up to date.
split-data = Your data
split-data-provider = Stores it in the region above, apart from other customers; never reads it without your consent (support access).
split-data-customer = Chooses what is backed up, how long it is kept, and checks restores.
split-access = Accounts and access
split-access-provider = Enforces sign-in, roles, two-factor authentication and the address allow-list.
split-access-customer = Registers and removes users, assigns roles, keeps passwords and devices safe.
split-keys = Encryption keys
split-keys-provider = Never holds your vault key; cannot recover an encrypted vault without it.
split-keys-customer = Keeps the passphrase and the recovery key safe.
split-logs = Logs
split-logs-provider = Records every security event in a tamper-evident log and keeps operator work logs.
split-logs-customer = Reviews the event log and downloads it as needed.
split-end = End of contract
split-end-provider = Locks access at once and erases your data within 30 days, with a deletion record.
split-end-customer = Restores what it needs to keep before the contract ends.

## Account
account-title = Account
account-me = You
account-password = Password
account-password-submit = Change the password
password-change-effect = Your other sessions end and your API tokens are revoked.
password-changed = Your password is changed. Other sessions have ended and API tokens were revoked.
account-sessions = Sessions
end-session = End
account-tokens = API tokens
tokens-none = No API token.
token-shown-once = Copy this token now: it is shown only once.
token-create = Create an API token
token-days = Valid for (days)
token-create-submit = Create

## Users
nav-users = Users
users-title = Users
users-you = you
users-role-for = Role of { $login }
users-change-role = Change
users-enable = Enable
users-disable = Disable
users-unlock = Unlock
users-reset-totp = Reset two-factor
users-send-reset = Send password reset
users-delete-confirm = Delete { $login }? Their sessions and API tokens end at once. This cannot be undone.
delete = Delete
users-add = Add a user
users-login-rule = 3 to 64 characters: a–z, 0–9, . _ @ - (unique across the service).
users-first-password = First password
users-password-generate = Generate one and show it to me once
users-password-mail = Mail the user a link to set it (needs an email address)
users-add-submit = Add
users-created = { $login } was added
users-password-once = Give this password to the user in person; it is shown only now. They can change it under Account.
users-created-mailed = { $login } was added; a link to set the password was sent to { $address }.
users-mail-needs-address = A link by mail needs the user's email address, and a service that can send mail.
users-choose-role = Choose one of the roles.
users-changed = The user was changed.
users-reset-sent = A password reset link was sent; the user's old password, sessions and API tokens no longer work.
users-deleted = The user was deleted.
users-matrix = What each role may do
col-permission = Permission
col-email = Email
col-totp = Two-factor
state-disabled = Disabled
state-locked = Locked
totp-on = On
totp-off = Off
optional = optional
yes = yes
no = no
permission-view-status = See the tenant's status; manage one's own sessions, password, API tokens and two-factor
permission-operate-backups = Manage machines, plans and backups
permission-restore = Restore data
permission-manage-users = Add, disable, unlock and delete users; change roles; reset two-factor
permission-manage-security = Set the admin address allow-list and the two-factor policy; grant and withdraw support access
permission-read-events = Read and download the event log

## Security
nav-security = Security
security-title = Security settings
save = Save
security-saved = Saved.
security-networks = Admin address allow-list
security-networks-lead = Administrators may sign in (and use administrator API tokens) only from these networks. Leave it empty to allow any address.
security-your-address = You are connecting from { $address }. A list without it is refused, so that you cannot lock yourself out.
security-networks-field = Networks (one CIDR or address per line)
security-networks-hint = For example 192.0.2.0/24 or 2001:db8::/32. Refused sign-ins are in the event log.
security-totp = Two-factor authentication
security-totp-who = Who must use two-factor authentication
totp-policy-optional = Each user chooses
totp-policy-admins = Administrators must
totp-policy-everyone = Everyone must
security-support = Support access
security-support-lead = The provider's staff cannot see your backups unless you allow it here, for a limited time. Every access is in your event log.
security-support-active = Support access is granted until { $until }.
security-support-none = Support access is not granted.
security-support-withdraw = Withdraw now
security-support-hours = Grant for how many hours (1 to { $max })
security-support-grant = Grant

## Two-factor enrolment
refusal-totp-required = Your organisation requires two-factor authentication for your role. Turn it on below to use the portal.
totp-is-off = Two-factor authentication is off. With it on, signing in also needs a code from an authenticator app.
totp-start = Turn on two-factor authentication
totp-scan = Scan this QR code with your authenticator app (or enter the key below), then enter the code it shows.
totp-qr-label = QR code for the authenticator app
totp-secret-text = Key for manual entry:
totp-confirm = Confirm and turn on
totp-enabled = Two-factor authentication is on.
totp-recovery-once = Keep these recovery codes somewhere safe: each signs you in once if your device is lost. They are shown only now.
totp-is-on = Two-factor authentication is on.
totp-turn-off = Turn off two-factor authentication
totp-disabled = Two-factor authentication is off.

## Snapshots
nav-snapshots = Snapshots
snapshots-title = Snapshots
snapshots-none = No snapshot matches.
all = All
col-kind = Kind
col-source-name = Source
col-size = Size
col-added = Stored by this backup
col-modified = Modified
kind-files = Files
kind-image = Disk image
filter-from = From
filter-to = To
filter-apply = Show
page-next = Next page
page-previous = Previous page
snapshot-title = Snapshot
snapshot-files = { $files } files
snapshot-encrypted = Encrypted with your key
snapshot-not-encrypted = Not encrypted
snapshot-damaged = Verification found damaged or missing data in this snapshot; some files may not restore. Ask your provider.
snapshot-no-restore = Your role may see snapshots but not browse or download them.
snapshot-contents = Contents
snapshot-path = Path
snapshot-entries = { $count } entries
snapshot-unlock = Open with the passphrase
snapshot-passphrase-note = This vault is encrypted with your key. To browse or download, enter its passphrase: it is sent to the service for this request only, held in memory while the request runs, and never stored or logged. The page sends it again for each step you take.
field-passphrase = Passphrase
snapshot-open = Open
download = Download
download-tar = Download as .tar
entry-file = File
entry-dir = Folder
entry-symlink = Link
entry-fifo = FIFO
entry-char_device = Character device
entry-block_device = Block device
entry-socket = Socket
entry-partition = Partition
col-machine = Machine
