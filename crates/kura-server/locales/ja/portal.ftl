# お客様専用ポータルサイト（日本語）。キーは en/portal.ftl と一致させること（テストで確認）。

product-name = Kura バックアップ
footer-portal = Kura お客様専用ポータルサイト
skip-to-content = 本文へ移動
language-label = 言語
language-apply = 切り替え
service-code = サービスコード
times-in-zone = 時刻は { $zone } で表示しています。
copy = コピー
rename = 名前を変更
revoke = 無効化
logout = ログアウト

## ナビゲーション
nav-label = メイン
nav-dashboard = ダッシュボード
nav-machines = マシン
nav-contract = ご契約
nav-account = アカウント

## ロール
role-admin = 管理者
role-operator = オペレーター
role-restore-operator = リストア担当者
role-auditor = 監査担当者

## ログイン
login-title = ログイン
login-lead = 管理者から通知されたログインIDとパスワードでログインしてください。
field-login = ログインID
field-password = パスワード
field-totp = ワンタイムパスワード
login-submit = ログイン
login-forgot = パスワードをお忘れの場合
totp-title = 二要素認証
totp-lead = 認証アプリに表示されている Kura のワンタイムパスワードを入力してください。
totp-recovery-hint = 端末を紛失した場合は、リカバリーコードを入力してください。
totp-submit = 確認
totp-start-over = 最初からやり直す
back-to-login = ログイン画面に戻る

## パスワード再発行
forgot-title = パスワードの再発行
forgot-lead = ログインIDを入力してください。メールアドレスが登録されている場合、新しいパスワードを設定するリンクをお送りします。
forgot-submit = リンクを送信
forgot-sent = このログインIDが存在しメールアドレスが登録されている場合、30分間有効なリンクを送信しました。メールをご確認ください。
forgot-no-mail = このサービスはメールを送信できないため、メールによるパスワード再発行はご利用いただけません。管理者に新しいパスワードの設定をご依頼ください。
reset-title = 新しいパスワードの設定
reset-lead = 新しいパスワードを入力してください。他のセッションと API トークンは無効になります。
field-new-password = 新しいパスワード
field-confirm-password = 新しいパスワード（確認）
field-old-password = 現在のパスワード
password-policy = 12文字以上。よく使われるパスワードは設定できません。
password-mismatch = 新しいパスワードが一致しません。同じパスワードを2回入力してください。
reset-submit = パスワードを設定
reset-done = パスワードを設定しました。新しいパスワードでログインしてください。

## 拒否
refusal-wrong-credentials = ログインIDまたはパスワードが正しくないか、アカウントが無効です。入力内容をご確認いただくか、「パスワードをお忘れの場合」から再発行するか、管理者にお問い合わせください。
refusal-wrong-code = ワンタイムパスワードが正しくないか、既に使用されています。アプリに表示される次のコードを入力してください。
refusal-sign-in-expired = ログイン操作の有効期限が切れました。パスワードからもう一度入力してください。
refusal-throttled = ログインの失敗が続いたため、一時的に制限しています。{ $until } 以降にもう一度お試しください。
refusal-locked = ログインの失敗が続いたため、{ $until } までロックされています。時間をおいてお試しいただくか、管理者にロック解除をご依頼ください。
refusal-outside-admin-networks = このテナントの管理者は許可されたネットワークからのみログインできます。お客様のアドレス { $address } は許可されていません（アクセス元IPアドレス制限）。他の管理者に追加をご依頼ください。
refusal-tenant-suspended = このテナントのサービスは停止中です。サービス提供者にお問い合わせください。
refusal-tenant-terminated = このテナントのご契約は終了しています。
refusal-session-ended = セッションが終了しました。もう一度ログインしてください。操作中の変更は保存されていません。
refusal-form-expired = フォームの有効期限が切れたため、変更は行われていません。ページを再読み込みしてもう一度お試しください。

## エラー
error-not-found = 見つかりません
error-forbidden = 権限がありません
error-unauthenticated = ログインしていません
error-throttled = 試行回数が多すぎます
error-invalid = この操作はできません
error-unavailable = 現在ご利用いただけません
error-internal = サービス側でエラーが発生しました
error-no-such-page = このページは存在しません。
error-status = HTTP ステータス { $status }
error-back = 戻る

## ダッシュボード
dashboard-title = ダッシュボード
usage-title = 保存容量の使用量
usage-percent = 容量上限の { $percent }%
quota-warning = 保存容量の使用量が上限の { $percent }% に達しています。バックアップが拒否される前に、古いスナップショットを削除するか、プランの変更をサービス提供者にご相談ください。
machines-registered = 台を登録済み（登録台数の上限）
machines-manage = マシンを管理
dashboard-machines = マシン
dashboard-events = 最近のイベント
events-none = イベントはまだありません。
col-name = 名前
col-id = ID
col-registered = 登録日時
col-state = 状態
col-time = 日時
col-action = 操作
col-actor = 実行者
col-target = 対象
col-result = 結果
col-actions = 操作
col-role = ロール
col-source = アクセス元
col-started = 開始
col-last-seen = 最終アクセス
col-created = 作成日時
col-expires = 有効期限
col-last-used = 最終使用
state-active = 有効
state-revoked = 無効化済み
state-ended = 終了
state-this-session = 現在のセッション

## マシン
machines-title = マシン
machines-none = 登録されたマシンはまだありません。
machines-add = マシンを追加
machines-token-title = 新しいマシンを登録
machines-token-lead = 新しいマシンで、バックアップを実行するユーザーとしてこのコマンドを実行してください。登録トークンは { $until } まで、1回だけ使用できます。
machines-token-once = この登録トークンは今だけ表示されます。紛失または期限切れの場合は、もう一度「マシンを追加」してください。
machines-ca-note = このサービスは独自の認証局を使用しています。先に証明書をコマンドと同じ場所に保存してください。
machines-new-name-for = { $name } の新しい名前
machines-revoke-confirm = { $name } を無効化しますか？エージェントは直ちに使用できなくなります。スナップショットは残ります。

## ご契約
contract-title = ご契約
contract-plan = プラン
contract-tenant = お客様名
contract-storage-quota = 保存容量の上限
contract-machine-quota = 登録台数
contract-region = データの保存場所（リージョン）
contract-time-zone = タイムゾーン
contract-since = ご契約開始
contract-options = オプション
contract-encryption = 暗号化
contract-encryption-required = 必須：すべてのボールトをお客様の鍵で暗号化します
contract-encryption-optional = 任意
contract-immutability = 削除ロック
contract-days = { $days } 日
contract-none = なし
contract-private-gateway = エージェントの接続元ネットワーク（プライベートゲートウェイ）
contract-anywhere = 制限なし
split-title = 責任分界点
split-lead = サービスの運用はサービス提供者が、バックアップ対象と閲覧できる人の決定はお客様が行います。
split-area = 範囲
split-provider = サービス提供者
split-customer = お客様
split-infra = サービスとストレージ
split-infra-provider = サービスの運用・監視・更新・バックアップを行い、ストレージの可用性とデータの完全性を維持します。
split-infra-customer = 対象サーバーとエージェントを稼働させ、最新の状態に保ちます。
split-data = お客様のデータ
split-data-provider = 上記のリージョンに他のお客様と分離して保存し、お客様の承認（サポートアクセス）なしに参照しません。
split-data-customer = バックアップ対象と保持期間を決め、リストアを確認します。
split-access = アカウントとアクセス
split-access-provider = ログイン、ロール、二要素認証、アクセス元IPアドレス制限を強制します。
split-access-customer = 利用者の登録・削除とロールの割り当てを行い、パスワードと端末を適切に管理します。
split-keys = 暗号鍵
split-keys-provider = ボールトの鍵を保持しません。鍵がなければ暗号化されたボールトを復元できません。
split-keys-customer = パスフレーズとリカバリーキーを安全に保管します。
split-logs = ログ
split-logs-provider = セキュリティに関わるイベントを改ざん検知可能なログに記録し、作業ログを保管します。
split-logs-customer = イベントログを確認し、必要に応じてダウンロードします。
split-end = ご契約の終了
split-end-provider = 直ちにアクセスを停止し、最長30日以内にデータを消去して削除記録を残します。
split-end-customer = 保管が必要なデータを、ご契約終了前にリストアします。

## アカウント
account-title = アカウント
account-me = ご利用者
account-password = パスワード
account-password-submit = パスワードを変更
password-change-effect = 他のセッションは終了し、API トークンは無効になります。
password-changed = パスワードを変更しました。他のセッションは終了し、API トークンは無効になりました。
account-sessions = セッション
end-session = 終了
account-tokens = API トークン
tokens-none = API トークンはありません。
token-shown-once = このトークンは今だけ表示されます。今すぐコピーしてください。
token-create = API トークンを作成
token-days = 有効期間（日）
token-create-submit = 作成

## 利用者
nav-users = 利用者
users-title = 利用者
users-you = ご本人
users-role-for = { $login } のロール
users-change-role = 変更
users-enable = 有効にする
users-disable = 無効にする
users-unlock = ロック解除
users-reset-totp = 二要素認証をリセット
users-send-reset = パスワード再発行を送信
users-delete-confirm = { $login } を削除しますか？セッションと API トークンは直ちに無効になります。元に戻せません。
delete = 削除
users-add = 利用者を追加
users-login-rule = 3〜64文字：a〜z、0〜9、. _ @ -（サービス全体で一意）。
users-first-password = 初期パスワード
users-password-generate = 生成して一度だけ表示する
users-password-mail = 設定用リンクを利用者にメールで送る（メールアドレスが必要）
users-add-submit = 追加
users-created = { $login } を追加しました
users-password-once = このパスワードは今だけ表示されます。利用者に直接お伝えください。「アカウント」から変更できます。
users-created-mailed = { $login } を追加し、パスワード設定用のリンクを { $address } に送信しました。
users-mail-needs-address = メールでリンクを送るには、利用者のメールアドレスと、メールを送信できるサービスが必要です。
users-choose-role = ロールを選択してください。
users-changed = 利用者を変更しました。
users-reset-sent = パスワード再発行のリンクを送信しました。以前のパスワード、セッション、API トークンは無効になりました。
users-deleted = 利用者を削除しました。
users-matrix = ロールごとの権限
col-permission = 権限
col-email = メールアドレス
col-totp = 二要素認証
state-disabled = 無効
state-locked = ロック中
totp-on = 有効
totp-off = 未設定
optional = 任意
yes = あり
no = なし
permission-view-status = テナントの状況の参照、自分のセッション・パスワード・API トークン・二要素認証の管理
permission-operate-backups = マシン、保護計画、バックアップの管理
permission-restore = データのリストア
permission-manage-users = 利用者の追加・無効化・ロック解除・削除、ロールの変更、二要素認証のリセット
permission-manage-security = 管理者のアクセス元IPアドレス制限、二要素認証の方針、サポートアクセスの許可と取り消し
permission-read-events = イベントログの参照とダウンロード

## セキュリティ
nav-security = セキュリティ
security-title = セキュリティ設定
save = 保存
security-saved = 保存しました。
security-networks = 管理者のアクセス元IPアドレス制限
security-networks-lead = 管理者は、ここに登録したネットワークからのみログイン（および管理者の API トークンの使用）ができます。空にするとすべてのアドレスから利用できます。
security-your-address = 現在のアクセス元は { $address } です。このアドレスを含まない設定は、ご自身が締め出されないよう受け付けません。
security-networks-field = ネットワーク（1行に1つの CIDR またはアドレス）
security-networks-hint = 例：192.0.2.0/24、2001:db8::/32。拒否されたログインはイベントログに記録されます。
security-totp = 二要素認証
security-totp-who = 二要素認証を必須にする対象
totp-policy-optional = 利用者ごとに選択
totp-policy-admins = 管理者は必須
totp-policy-everyone = 全員必須
security-support = サポートアクセス
security-support-lead = サービス提供者の担当者は、ここでお客様が期間を定めて許可しない限り、バックアップを参照できません。すべてのアクセスはイベントログに記録されます。
security-support-active = { $until } までサポートアクセスを許可しています。
security-support-none = サポートアクセスは許可していません。
security-support-withdraw = 今すぐ取り消す
security-support-hours = 許可する時間（1〜{ $max } 時間）
security-support-grant = 許可

## 二要素認証の設定
refusal-totp-required = お客様の組織では、このロールに二要素認証が必須です。ポータルを利用するには、下で二要素認証を有効にしてください。
totp-is-off = 二要素認証は無効です。有効にすると、ログイン時に認証アプリのワンタイムパスワードも必要になります。
totp-start = 二要素認証を有効にする
totp-scan = 認証アプリでこの QR コードを読み取り（または下のキーを入力し）、表示されたワンタイムパスワードを入力してください。
totp-qr-label = 認証アプリ用の QR コード
totp-secret-text = 手入力用のキー：
totp-confirm = 確認して有効にする
totp-enabled = 二要素認証を有効にしました。
totp-recovery-once = これらのリカバリーコードを安全な場所に保管してください。端末を紛失した場合に、それぞれ1回ログインに使用できます。今だけ表示されます。
totp-is-on = 二要素認証は有効です。
totp-turn-off = 二要素認証を無効にする
totp-disabled = 二要素認証を無効にしました。

## スナップショット
nav-snapshots = スナップショット
snapshots-title = スナップショット
snapshots-none = 該当するスナップショットはありません。
all = すべて
col-kind = 種類
col-source-name = バックアップ対象
col-size = サイズ
col-added = このバックアップで保存した量
col-modified = 更新日時
kind-files = ファイル
kind-image = サーバーイメージ
filter-from = 開始日
filter-to = 終了日
filter-apply = 表示
page-next = 次のページ
page-previous = 前のページ
snapshot-title = スナップショット
snapshot-files = { $files } ファイル
snapshot-encrypted = お客様の鍵で暗号化
snapshot-not-encrypted = 暗号化なし
snapshot-damaged = 検証により、このスナップショットのデータに破損または欠落が見つかりました。一部のファイルはリストアできない可能性があります。サービス提供者にお問い合わせください。
snapshot-no-restore = お客様のロールでは、スナップショットの参照はできますが、内容の閲覧やダウンロードはできません。
snapshot-contents = 内容
snapshot-path = パス
snapshot-entries = { $count } 件
snapshot-unlock = パスフレーズで開く
snapshot-passphrase-note = このボールトはお客様の鍵で暗号化されています。閲覧やダウンロードにはパスフレーズを入力してください。パスフレーズはこの操作のためだけにサービスへ送信され、処理中のみメモリ上に保持され、保存や記録はされません。操作のたびにページから再送信されます。
field-passphrase = パスフレーズ
snapshot-open = 開く
download = ダウンロード
download-tar = .tar でダウンロード
entry-file = ファイル
entry-dir = フォルダー
entry-symlink = リンク
entry-fifo = FIFO
entry-char_device = キャラクターデバイス
entry-block_device = ブロックデバイス
entry-socket = ソケット
entry-partition = パーティション
col-machine = マシン
